package main

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// A command's error exits with the code its kind has in wire's table, as
// far as --help documents it: 2 for usage, 6 for a store that is
// unavailable, 1 for anything else.
func TestExitCodeByKind(t *testing.T) {
	_, dialErr := net.Dial("tcp", "127.0.0.1:1") // nothing listens on port 1
	if dialErr == nil {
		t.Fatal("a dial to 127.0.0.1:1 succeeded")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, listenErr := net.Listen("tcp", l.Addr().String()) // the port is taken
	if listenErr == nil {
		t.Fatal("a second listen on one port succeeded")
	}
	for _, c := range []struct {
		name string
		err  error
		want int
	}{
		{"usage", usageError{errors.New("unexpected arguments")}, exitUsage},
		{"plain", errors.New("the bucket key is not the store's"), exitError},
		{"params", fmt.Errorf("open: %w", blobstore.ErrParamsMismatch), exitError},
		{"unavailable", fmt.Errorf("purge: %w", wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "store unavailable, retry later", errors.New("x"))), wire.ExitNetwork},
		{"a dial without a kind", fmt.Errorf("connect to redis: %w", dialErr), exitError},
		{"listen", fmt.Errorf("serve: %w", listenErr), exitError},
		{"a kind --help does not list", blobstore.ErrNotFound, exitError},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("%s: exit %d, want %d (%v)", c.name, got, c.want, c.err)
		}
	}
}
