package sealtest

import (
	"context"
	mrand "math/rand/v2"
	"runtime/pprof"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// SealBlocks is how many blocks one seal of BenchSeal and
// BenchWritesDuringSeal rewrites: 128 MiB of 64 KiB blocks, about what
// the first measurement of sealing gave (131 MB in about 1 s).
const SealBlocks = 2048

// SealBaseline is the store's engine doing a seal's work with no store
// around it: blocks written, then rewritten in a random order to where
// sealed blocks lie.
type SealBaseline struct {
	// Fill writes the blocks of ops (creates) raw; it is not timed.
	Fill func(b *testing.B, ops []blobstore.Op)
	// Rewrite moves what Fill wrote, in a random order; it is timed.
	Rewrite func(b *testing.B)
}

// SealBench is what BenchSeal needs of a store.
type SealBench struct {
	// Store is a fresh store of BlockSize blocks.
	Store     Store
	BlockSize int
	Raw       SealBaseline
	// Settle, if set, runs once both are filled, untimed: PostgreSQL's
	// CHECKPOINT, so that neither pays for the other's dirty pages.
	Settle func(b *testing.B)
	// Written, if set, returns how many bytes the engine has written so
	// far (its write-ahead log, or the process's writes), or -1 where that
	// is not known. WrittenName names it in the metrics
	// seal-<name>/byte and raw-<name>/byte.
	Written     func() int64
	WrittenName string
}

// BenchSeal seals SealBlocks new blocks per round (the seal's whole
// work) and, in the same rounds, has the raw engine do the same rewrite.
// It reports both rates, their ratio (seal/raw; also as the median of
// the rounds' ratios, which load on a shared machine disturbs less), and
// where known the write amplification of each: bytes written per byte of
// block data.
func BenchSeal(b *testing.B, cfg SealBench) {
	ctx := context.Background()
	s := cfg.Store
	blocks := newBlockSet(64, cfg.BlockSize)
	bucket := randBucket()
	var sealTime, rawTime time.Duration
	var sealW, rawW int64
	wKnown := cfg.Written != nil
	written := func() int64 {
		if !wKnown {
			return 0
		}
		n := cfg.Written()
		wKnown = wKnown && n >= 0
		return n
	}
	var ratios []float64 // per round: raw time / seal time
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		ops := make([]blobstore.Op, SealBlocks)
		for j := range ops {
			ops[j] = blocks.create(j, bucket)
		}
		fillStore := func() {
			for j := 0; j < len(ops); j += 64 {
				if _, err := s.Apply(ctx, ops[j:min(j+64, len(ops))]); err != nil {
					b.Fatal(err)
				}
			}
		}
		// What was written last is likelier in the caches: alternate.
		if i%2 == 0 {
			fillStore()
			cfg.Raw.Fill(b, ops)
		} else {
			cfg.Raw.Fill(b, ops)
			fillStore()
		}
		if cfg.Settle != nil {
			cfg.Settle(b)
		}
		b.StartTimer()

		seal := func() {
			w0, t0 := written(), time.Now()
			rep, err := s.Seal(ctx)
			sealTime += time.Since(t0)
			sealW += written() - w0
			if err != nil {
				b.Fatal(err)
			}
			if rep.Blocks != SealBlocks {
				b.Fatalf("the seal rewrote %d blocks, want %d", rep.Blocks, SealBlocks)
			}
		}
		rewrite := func() {
			w0, t0 := written(), time.Now()
			cfg.Raw.Rewrite(b)
			rawTime += time.Since(t0)
			rawW += written() - w0
		}
		// Alternate which goes first, so that neither always finds the
		// other's writes in the caches.
		s0, r0 := sealTime, rawTime
		if i%2 == 0 {
			seal()
			rewrite()
		} else {
			rewrite()
			seal()
		}
		ratios = append(ratios, float64(rawTime-r0)/float64(sealTime-s0))
	}
	b.StopTimer()
	data := float64(SealBlocks*cfg.BlockSize) * float64(b.N)
	sealRate, rawRate := data/1e6/sealTime.Seconds(), data/1e6/rawTime.Seconds()
	b.ReportMetric(sealRate, "seal-MB/s")
	b.ReportMetric(rawRate, "raw-MB/s")
	b.ReportMetric(sealRate/rawRate, "seal/raw")
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "seal/raw-median-round")
	if wKnown {
		b.ReportMetric(float64(sealW)/data, "seal-"+cfg.WrittenName+"/byte")
		b.ReportMetric(float64(rawW)/data, "raw-"+cfg.WrittenName+"/byte")
	}
}

// BenchWritesDuringSeal times single-block creates (four writers) while
// a seal rewrites SealBlocks blocks, then as long again with no seal,
// and reports the median latency of each and their ratio.
func BenchWritesDuringSeal(b *testing.B, s Store, blockSize int) {
	seal := func() error {
		_, err := s.Seal(context.Background())
		return err
	}
	benchWritesDuring(b, s, blockSize, "seal", nil, seal, seal)
}

// benchWritesDuring is BenchWritesDuringSeal for work (named what in the
// metrics), after prepare has run untimed on the blocks filled; settle
// runs untimed after each round, so that what was written meanwhile is
// not the next round's work.
func benchWritesDuring(b *testing.B, s Store, blockSize int, what string, prepare, work, settle func() error) {
	ctx := context.Background()
	blocks := newBlockSet(64, blockSize)
	bucket := randBucket()
	var quiet, sealing []time.Duration
	run := func(into *[]time.Duration, during func()) {
		var mu sync.Mutex
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < 4; w++ {
			wg.Go(func() {
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					op := blocks.create(k, bucket)
					t0 := time.Now()
					if _, err := s.Apply(ctx, []blobstore.Op{op}); err != nil {
						b.Error(err)
						return
					}
					d := time.Since(t0)
					mu.Lock()
					*into = append(*into, d)
					mu.Unlock()
				}
			})
		}
		during()
		close(stop)
		wg.Wait()
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		blocks.fill(b, s, SealBlocks, bucket)
		if prepare != nil {
			if err := prepare(); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		var took time.Duration
		run(&sealing, func() {
			t0 := time.Now()
			if err := work(); err != nil {
				b.Fatal(err)
			}
			took = time.Since(t0)
		})
		// As long again without a seal: what was written meanwhile is
		// sealed next round, outside the timing.
		run(&quiet, func() { time.Sleep(took) })
		b.StopTimer()
		if err := settle(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	ms := func(ds []time.Duration) float64 { return float64(median(ds).Microseconds()) / 1e3 }
	mq, msl := ms(quiet), ms(sealing)
	b.ReportMetric(mq, "ms-median-write")
	b.ReportMetric(msl, "ms-median-write-during-"+what)
	b.ReportMetric(msl/mq, "during/quiet")
	b.ReportMetric(float64(len(sealing)), "writes-during-"+what+"s")
}

// Renewal as make bench measures it: an account of RenewAccount blocks
// of RenewBlockSize bytes, renewed in shuffled requests of RenewBatch
// (the service's RenewBatch; the write pool never splits a request, so
// each is one Apply).
const (
	RenewAccount   = 100_000
	RenewBlockSize = 4096
	RenewBatch     = 4096 // blobstore.DefaultLimits.RenewBatch
)

// RenewBaseline is the store's engine keeping a lease per block with no
// store around it.
type RenewBaseline struct {
	// Load writes a record for each of ids, in bucket; it is not timed.
	Load func(b *testing.B, ids []wire.ID, bucket bucketer.Bucket)
	// Renew moves the records of ids into bucket in one transaction; it
	// is timed.
	Renew func(b *testing.B, ids []wire.ID, bucket bucketer.Bucket)
}

// RenewBench is what BenchRenew needs of a store.
type RenewBench struct {
	// Store is a fresh store of RenewBlockSize blocks.
	Store Store
	// Sealed seals the account before the renewals: an account logging in
	// after a seal rather than right after its writes.
	Sealed bool
	Raw    RenewBaseline
	// Written, if set, returns how many bytes the process has written so
	// far, or -1 where that is not known.
	Written func() int64
}

// BenchRenew renews the whole account into a fresh bucket per iteration
// and, in the same iteration, has the raw engine renew as many records
// in transactions of the same size. It reports both rates and their
// ratio, store/raw, and where known the bytes written per renewal.
func BenchRenew(b *testing.B, cfg RenewBench) {
	ctx := context.Background()
	s := cfg.Store
	type block struct {
		id wire.ID
		ph wire.ProofHash
	}
	blocks := make([]block, RenewAccount)
	bucket := randBucket()
	data := randBytes(RenewBlockSize)
	etag := wire.ETagOf(data)
	for lo := 0; lo < len(blocks); lo += 1024 {
		var ops []blobstore.Op
		for i := lo; i < min(lo+1024, len(blocks)); i++ {
			w := randProof()
			blocks[i] = block{id: wire.NewID(), ph: w.Renew().Hash()}
			ops = append(ops, blobstore.Op{Kind: blobstore.OpPut, ID: blocks[i].id, ProofHash: w.Hash(), Data: data, ETag: etag, Bucket: bucket})
		}
		if _, err := s.Apply(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
	if cfg.Sealed {
		mustSeal(b, s)
	}
	ids := make([]wire.ID, len(blocks))
	for i := range blocks {
		ids[i] = blocks[i].id
	}
	cfg.Raw.Load(b, ids, bucket)

	written := func() int64 {
		if cfg.Written == nil {
			return -1
		}
		return cfg.Written()
	}
	var storeTime, rawTime time.Duration
	var storeW, rawW int64
	wKnown := cfg.Written != nil
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		mrand.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
		bucket = randBucket()
		w0, t0 := written(), time.Now()
		for lo := 0; lo < len(blocks); lo += RenewBatch {
			hi := min(lo+RenewBatch, len(blocks))
			ops := make([]blobstore.Op, 0, hi-lo)
			for i := lo; i < hi; i++ {
				ops = append(ops, blobstore.Op{Kind: blobstore.OpRenew, ID: blocks[i].id, ProofHash: blocks[i].ph, Bucket: bucket})
			}
			var rs []blobstore.Result
			var err error
			pprof.Do(ctx, pprof.Labels("phase", "renew"), func(ctx context.Context) { rs, err = s.Apply(ctx, ops) })
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rs {
				if r.Status != blobstore.StatusRenewed {
					b.Fatalf("renew answered %v", r.Status)
				}
			}
		}
		storeTime += time.Since(t0)
		w1 := written()
		storeW += w1 - w0
		wKnown = wKnown && w0 >= 0 && w1 >= 0

		// The same order for the raw engine, outside its timing.
		b.StopTimer()
		for i := range blocks {
			ids[i] = blocks[i].id
		}
		b.StartTimer()
		w0, t0 = written(), time.Now()
		for lo := 0; lo < len(ids); lo += RenewBatch {
			cfg.Raw.Renew(b, ids[lo:min(lo+RenewBatch, len(ids))], bucket)
		}
		rawTime += time.Since(t0)
		w1 = written()
		rawW += w1 - w0
		wKnown = wKnown && w0 >= 0 && w1 >= 0
	}
	b.StopTimer()
	total := float64(b.N * len(blocks))
	b.ReportMetric(total/storeTime.Seconds(), "blocks/s")
	b.ReportMetric(total/rawTime.Seconds(), "raw-blocks/s")
	b.ReportMetric(rawTime.Seconds()/storeTime.Seconds(), "store/raw")
	if wKnown {
		b.ReportMetric(float64(storeW)/total, "B-written/renewal")
		b.ReportMetric(float64(rawW)/total, "raw-B-written/renewal")
	}
}
