//go:build !linux

package client

import (
	"errors"
	"os"
)

// Direct writes are Linux's here (directio_linux.go); elsewhere the
// staging writer writes through the page cache.

func directAlign(*os.File) (int, bool) { return 0, false }

func setDirect(*os.File, bool) error { return errors.ErrUnsupported }
