package blobstore

import "github.com/blindstore/blindstore/wire"

// IsNotFound reports whether err is of wire.KindNotFound.
func IsNotFound(err error) bool { return err != nil && wire.KindOf(err) == wire.KindNotFound }

// ErrNotFound is returned by stores for a missing block.
var ErrNotFound = wire.E(wire.KindNotFound, wire.CodeNotFound, "no such block")
