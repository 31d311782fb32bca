package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// fillSenders is the number of batch writes in flight while an account
// is filled: enough for the write pool's default cap (1024 ops) to fill
// with 64-block batches, so that filling never waits for the pool's
// window.
const fillSenders = 16

// renewRows fills an account of renewBlocks small blocks with their own
// proofs, waits for a new period, renews them all through POST /v1/renew
// (the renew row), then stops the server and purges them all as expired
// through the store (the purge row).
func (b *bench) renewRows(ctx context.Context, st storeKind) []Row {
	c := b.cfg
	renewName := fmt.Sprintf("renew %s, %d blocks", st.name, c.renewBlocks)
	purgeName := fmt.Sprintf("purge %s, %d blocks", st.name, c.renewBlocks)
	both := func(f func(group, name string) Row) []Row {
		var rows []Row
		if c.rows["renew"] {
			rows = append(rows, f("renew", renewName))
		}
		if c.rows["purge"] {
			rows = append(rows, f("purge", purgeName))
		}
		return rows
	}
	skip := func(why string) []Row {
		return both(func(g, n string) Row { return skipRow(g, n, why) })
	}
	fail := func(err error) []Row {
		return both(func(g, n string) Row { return failRow(g, n, err) })
	}
	// Filling at a pessimistic 5,000 blocks/s, two period boundaries,
	// renewing at 5,000/s, and the purge.
	need := time.Duration(c.renewBlocks/2500)*time.Second + 3*c.renewPeriod + 5*time.Second
	if why, ok := b.budget(ctx, need); !ok {
		return skip(why)
	}
	dbURL, err := b.storeURL(ctx, st, "renew")
	if err != nil {
		return skip(err.Error())
	}
	extra := append([]string(nil), c.serverArgs...)
	if b.serveFlags["purge-every"] {
		// No scheduled purge may take blocks away mid-row.
		extra = append(extra, "--purge-every", "0")
	}
	b.logf("renew and purge on the %s store: %d blocks of %d bytes", st.name, c.renewBlocks, c.renewBlockSize)
	srv, err := b.startBlockServer(ctx, serverSpec{store: dbURL, blockSize: c.renewBlockSize, period: c.renewPeriod, extra: extra}, "renew-"+st.name)
	if err != nil {
		return fail(err)
	}
	defer srv.cleanup()
	cfg, err := getConfig(ctx, b.hc, srv.baseURL())
	if err != nil {
		return fail(err)
	}
	if cfg.BlockSize != c.renewBlockSize {
		return fail(fmt.Errorf("server has block size %d, want %d", cfg.BlockSize, c.renewBlockSize))
	}

	// Fill.
	items := make([]renewItem, c.renewBlocks)
	pl := newPayloads(16, c.renewBlockSize)
	batch := max(1, cfg.Limits.WriteBatch)
	t0 := time.Now()
	err = parallelChunks(ctx, len(items), batch, fillSenders, func(ctx context.Context, lo, hi int) error {
		bi := make([]batchItem, 0, hi-lo)
		for i := lo; i < hi; i++ {
			w := newProof()
			id := wire.NewID()
			data, _ := pl.pick()
			bi = append(bi, batchItem{id: id, proof: w, data: data})
			items[i] = renewItem{id: id, proof: w.Renew()}
		}
		return putBatch(ctx, b.hc, srv.baseURL(), bi)
	})
	fillTime := time.Since(t0)
	if err != nil {
		return fail(fmt.Errorf("filling the account: %w", err))
	}
	// Every block must still be live when renewed: written within the
	// last R-1 periods.
	if lifetime := time.Duration(cfg.RetentionPeriods-2) * c.renewPeriod; fillTime > lifetime {
		return fail(fmt.Errorf("filling took %v, longer than the %v an untouched block is sure to live with -renew-period %v: raise -renew-period", fillTime.Round(time.Millisecond), lifetime, c.renewPeriod))
	}
	lastWritten, err := getConfig(ctx, b.hc, srv.baseURL())
	if err != nil {
		return fail(err)
	}

	// Wait for a new period, so that every block needs its renewal.
	waitUntil := time.Now().Add(2*c.renewPeriod + 5*time.Second)
	for {
		cur, err := getConfig(ctx, b.hc, srv.baseURL())
		if err != nil {
			return fail(err)
		}
		if cur.CurrentPeriod > lastWritten.CurrentPeriod {
			break
		}
		if time.Now().After(waitUntil) {
			return fail(fmt.Errorf("the server's period did not change within %v", 2*c.renewPeriod+5*time.Second))
		}
		select {
		case <-ctx.Done():
			return fail(ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}

	// Renew, shuffled as a client sends them.
	rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	rb := max(1, cfg.Limits.RenewBatch)
	var renewed, current, missing, refused atomic.Int64
	t0 = time.Now()
	err = parallelChunks(ctx, len(items), rb, c.renewSenders, func(ctx context.Context, lo, hi int) error {
		out, err := renew(ctx, b.hc, srv.baseURL(), items[lo:hi])
		if err != nil {
			return err
		}
		renewed.Add(int64(out.Renewed))
		current.Add(int64(out.Current))
		missing.Add(int64(len(out.Missing)))
		refused.Add(int64(len(out.Refused)))
		return nil
	})
	renewTime := time.Since(t0)
	var rows []Row
	if c.rows["renew"] {
		switch {
		case err != nil:
			rows = append(rows, failRow("renew", renewName, err))
		case missing.Load() != 0 || refused.Load() != 0 || renewed.Load()+current.Load() != int64(len(items)):
			rows = append(rows, failRow("renew", renewName, fmt.Errorf("of %d blocks: %d renewed, %d current, %d missing, %d refused", len(items), renewed.Load(), current.Load(), missing.Load(), refused.Load())))
		default:
			rate := float64(len(items)) / renewTime.Seconds()
			rows = append(rows, Row{
				Group: "renew", Name: renewName, Figure: rate, Unit: "blocks/s",
				Target: &Target{On: "figure", Op: ">=", Value: 50000},
				Extra: map[string]float64{
					"renew_seconds": renewTime.Seconds(), "fill_seconds": fillTime.Seconds(),
					"fill_blocks_per_s": float64(len(items)) / fillTime.Seconds(), "renewed": float64(renewed.Load()), "current": float64(current.Load()),
				},
				Note: fmt.Sprintf("end to end over HTTP: %s of up to %d blocks (renew_batch), %d in flight, after a period boundary (period %v); block size %d to keep the fill quick (filled at %.0f blocks/s by POST /v1/blocks)",
					plural((len(items)+rb-1)/rb, "request"), rb, c.renewSenders, c.renewPeriod, c.renewBlockSize, float64(len(items))/fillTime.Seconds()),
			})
		}
	} else if err != nil {
		return fail(err)
	}
	if !c.rows["purge"] {
		return rows
	}

	// Purge: every block, through the store, once the server is gone.
	if err := srv.stop(); err != nil {
		return append(rows, failRow("purge", purgeName, fmt.Errorf("stopping the server: %w", err)))
	}
	n, took, err := purgeAll(ctx, st, srv, dbURL, c.renewBlockSize, c.renewPeriod, cfg.RetentionPeriods)
	switch {
	case err != nil:
		rows = append(rows, failRow("purge", purgeName, err))
	case n != int64(len(items)):
		rows = append(rows, failRow("purge", purgeName, fmt.Errorf("purged %d blocks, want %d", n, len(items))))
	default:
		rows = append(rows, Row{
			Group: "purge", Name: purgeName, Figure: float64(n) / took.Seconds(), Unit: "blocks/s",
			Extra: map[string]float64{"purge_seconds": took.Seconds()},
			Note:  fmt.Sprintf("Store.Purge with a live set that excludes every bucket (the blocks span a few expired buckets), the server stopped; %v for %d blocks", took.Round(time.Millisecond), n),
		})
	}
	return rows
}

// purgeAll opens the stopped server's store and purges every block as if
// the clock were past all their buckets.
func purgeAll(ctx context.Context, st storeKind, srv blockServer, dbURL string, bs int, period time.Duration, retention int) (int64, time.Duration, error) {
	s, bk, err := openStopped(ctx, st, srv, dbURL, bs, period, retention)
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	live := bk.LiveAt(bk.Current() + uint64(retention) + 1)
	t0 := time.Now()
	n, err := s.Purge(ctx, live, false)
	took := time.Since(t0)
	if err != nil {
		return n, took, fmt.Errorf("purge: %w", err)
	}
	return n, took, nil
}

// openStopped opens the store a stopped server left, with the bucketer
// of its key, period and retention.
func openStopped(ctx context.Context, st storeKind, srv blockServer, dbURL string, bs int, period time.Duration, retention int) (blobstore.Store, *bucketer.Bucketer, error) {
	bk, err := bucketer.New(bucketer.Config{Key: srv.bucketKey(), Period: period, Retention: retention})
	if err != nil {
		return nil, nil, err
	}
	params := blobstore.Params{BlockSize: bs, Fingerprint: bk.Fingerprint()}
	var s blobstore.Store
	if st == pgStore {
		s, err = postgres.Open(ctx, dbURL, params, postgres.Options{Logger: quietLogger()})
	} else {
		s, err = bolt.Open(filepath.Join(srv.dataDir(), "blocks.db"), params)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("open the store: %w", err)
	}
	return s, bk, nil
}

// parallelChunks calls f on [lo, hi) chunks of size of [0, n), from
// workers goroutines, and returns the first error.
func parallelChunks(ctx context.Context, n, size, workers int, f func(ctx context.Context, lo, hi int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				lo := int(next.Add(int64(size))) - size
				if lo >= n {
					return
				}
				if err := f(ctx, lo, min(lo+size, n)); err != nil {
					once.Do(func() { first = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
