package main

import (
	"flag"
	"fmt"
	"time"

	"github.com/blindstore/blindstore/blobstore/httpapi"
)

// timeoutFlags are serve's flags for how long a client may take, and how
// many connections it may hold: the defence against clients that hold
// connections open by sending slowly or not at all. /v1/config publishes
// the timeouts.
type timeoutFlags struct {
	readHeader, read, write, idle time.Duration
	maxConns                      int
}

func (f *timeoutFlags) register(fs *flag.FlagSet) {
	fs.DurationVar(&f.readHeader, "read-header-timeout", httpapi.DefaultReadHeaderTimeout, "longest a client may take to send a request's headers (also bounds a new connection that sends nothing)")
	fs.DurationVar(&f.read, "read-timeout", httpapi.DefaultReadTimeout, "longest a client may take to send a whole request, body included (a batch of write_batch blocks must fit in it)")
	fs.DurationVar(&f.write, "write-timeout", httpapi.DefaultWriteTimeout, "longest an answer may take, from the end of the request's headers")
	fs.DurationVar(&f.idle, "idle-timeout", httpapi.DefaultIdleTimeout, "how long an idle keep-alive connection stays open")
	fs.IntVar(&f.maxConns, "max-connections", DefaultMaxConnections, "most client connections open at once; more wait to be accepted (bounds memory against clients that open thousands)")
}

// apply sets the timeouts of opt.
func (f *timeoutFlags) apply(opt *httpapi.Options) error {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"--read-header-timeout", f.readHeader}, {"--read-timeout", f.read}, {"--write-timeout", f.write}, {"--idle-timeout", f.idle}} {
		if d.v <= 0 {
			return usageError{fmt.Errorf("%s must be positive, got %v", d.name, d.v)}
		}
	}
	if f.maxConns < 1 {
		return usageError{fmt.Errorf("--max-connections must be at least 1, got %d", f.maxConns)}
	}
	if f.readHeader > f.read {
		return usageError{fmt.Errorf("--read-header-timeout (%v) must not exceed --read-timeout (%v)", f.readHeader, f.read)}
	}
	opt.ReadHeaderTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.IdleTimeout = f.readHeader, f.read, f.write, f.idle
	return nil
}
