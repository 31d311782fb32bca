//go:build !linux

package bolt

import "os"

const writebackSupported = false

func startWriteback(*os.File) error { return nil }
