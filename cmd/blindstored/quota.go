package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/privacypass/spent"
)

// quotaFlags are serve's flags for what writes cost (docs/design.md §11):
// Privacy Pass tokens from an issuer, or, in an open store, a write rate
// per address. The capacity cap holds in both.
type quotaFlags struct {
	issuer     string
	origin     string
	refresh    time.Duration
	maxBlocks  int64
	writeRate  float64
	writeBurst int
}

// defaultMaxBlocks caps a store that does not choose: 64 GiB of 64 KiB
// blocks, so that an open store on a forgotten machine stops with 507
// before the disk is full.
const defaultMaxBlocks = 1 << 20

func (f *quotaFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.issuer, "token-issuer", "", "token issuer `URL` (blindstored issuer): creating and renewing blocks then costs Privacy Pass tokens; empty: an open store")
	fs.StringVar(&f.origin, "token-origin", "", "origin_info of the token challenge: this server's `name` (host[:port]) so that tokens are good here only; empty: any server of the issuer (then servers sharing an issuer must share the store)")
	fs.DurationVar(&f.refresh, "token-refresh", privacypass.DefaultRefresh, "how often to read the issuer's directory again (its keys rotate every period)")
	fs.Int64Var(&f.maxBlocks, "max-blocks", defaultMaxBlocks, "most `blocks` the store holds; writes that would create more get 507 (0: no cap)")
	fs.Float64Var(&f.writeRate, "write-rate", httpapi.DefaultWriteRate, "open store only: `blocks` each client address may write per second after its burst (0: no limit)")
	fs.IntVar(&f.writeBurst, "write-burst", httpapi.DefaultWriteBurst, "open store only: `blocks` each client address may write at once (at least --write-batch)")
}

// renewBatch is the renew limit serve publishes: with tokens, one token
// pays for write_batch blocks, so no renewal names more.
func (f *quotaFlags) renewBatch(renew, write int) int {
	if f.issuer != "" && write > 0 {
		return min(renew, write)
	}
	return renew
}

// quota is what start set up, for the API.
type quota struct {
	redeemer   *privacypass.Redeemer
	spent      privacypass.SpentSet
	writeLimit httpapi.WriteLimiter
	stop       func()
}

// start opens the spent set (spent.db in --data, or tables in
// PostgreSQL) and the redeemer, and reads the issuer's directory, trying
// for a few seconds. An issuer that cannot be reached does not stop the
// server: reads, overwrites and deletes work, and paid writes answer 503
// until the directory is read.
func (f *quotaFlags) start(ctx context.Context, log *slog.Logger, sf *storeFlags, writeBatch int) (*quota, error) {
	switch {
	case f.maxBlocks < 0:
		return nil, usageError{fmt.Errorf("--max-blocks must be 0 (no cap) or more, got %d", f.maxBlocks)}
	case f.writeRate < 0:
		return nil, usageError{fmt.Errorf("--write-rate must be 0 (no limit) or more, got %v", f.writeRate)}
	case f.writeRate > 0 && f.writeBurst < writeBatch:
		return nil, usageError{fmt.Errorf("--write-burst %d is below --write-batch %d: no batch could ever pass", f.writeBurst, writeBatch)}
	case f.refresh < time.Second:
		return nil, usageError{fmt.Errorf("--token-refresh must be at least 1s, got %v", f.refresh)}
	}
	q := &quota{stop: func() {}}
	if f.issuer == "" {
		if f.writeRate > 0 {
			q.writeLimit = httpapi.NewMemoryWriteLimiter(f.writeRate, f.writeBurst)
		}
		log.Info("open store: writes are free; limited per client address and by the capacity cap",
			"write_rate", f.writeRate, "write_burst", f.writeBurst, "max_blocks", f.maxBlocks)
		return q, nil
	}
	var err error
	if sf.isPostgres() {
		q.spent, err = spent.OpenPostgres(ctx, sf.store)
	} else {
		if err := os.MkdirAll(sf.data, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		q.spent, err = spent.OpenBolt(filepath.Join(sf.data, "spent.db"))
	}
	if err != nil {
		return nil, fmt.Errorf("spent tokens: %w", err)
	}
	q.redeemer, err = privacypass.NewRedeemer(privacypass.RedeemerConfig{
		Issuer: f.issuer, OriginInfo: f.origin, Spent: q.spent, Refresh: f.refresh, Logger: log,
	})
	if err != nil {
		q.spent.Close()
		return nil, usageError{fmt.Errorf("--token-issuer: %w", err)}
	}
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = q.redeemer.Refresh(rctx)
		cancel()
		if err == nil || attempt == 4 || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Second)
	}
	if err != nil {
		log.Warn("token issuer not reachable: paid writes answer 503 until its directory is read", "issuer", f.issuer, "err", err)
	} else {
		log.Info("writes are paid with Privacy Pass tokens", "issuer", f.issuer, "keys", len(q.redeemer.Keys()))
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); q.redeemer.Run(rctx) }()
	q.stop = func() { cancel(); <-done }
	return q, nil
}

// apply hands the quota to the API.
func (q *quota) apply(opt *httpapi.Options) {
	if q.redeemer != nil {
		opt.Tokens = q.redeemer
	}
	opt.WriteLimit = q.writeLimit
}

// close stops the directory refresh and closes the spent set.
func (q *quota) close() error {
	q.stop()
	if q.spent != nil {
		return q.spent.Close()
	}
	return nil
}
