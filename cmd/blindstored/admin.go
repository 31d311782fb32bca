package main

// The admin listener: Prometheus metrics, liveness and pprof, on an address of
// their own (--admin-listen, off by default), never on the API's.
//
// What it serves is aggregate: counts, histograms and gauges whose labels
// come from closed sets the server chooses (route patterns, statuses,
// guard names). No metric names a block, a proof, an ETag, a bucket or a
// client address, and pprof leaves out the two pages that could: the
// command line (flags may hold a bucket key or a database password) and
// the full goroutine dump (debug=2 prints function arguments, which may
// be the bytes of a block ID).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/blobstore/pool"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/scheduler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// adminFlags are serve's flags for the admin listener.
type adminFlags struct {
	listen string
	ln     net.Listener // bound by bind, served by start
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "admin-listen", "", "serve /metrics (Prometheus), /healthz and /debug/pprof/ on this `address`, apart from the API (off when empty; keep it on loopback or a private network)")
}

// observability is what serve measures. A nil *observability measures
// nothing: every method is a no-op on it, so serve without
// --admin-listen pays nothing.
type observability struct {
	reg    *prometheus.Registry
	http   *httpapi.Metrics
	commit *commitMetrics
	seal   *sealMetrics
	merge  *mergeMetrics
	sched  atomic.Pointer[schedSource]
}

// schedSource is where the purge's and the seal's counters come from once
// the scheduler runs. purger is nil when purges are off.
type schedSource struct {
	purger *scheduler.Purger
	sched  *scheduler.Scheduler
}

// newObservability registers every metric of serve: the Go runtime and
// the process, the API, the write pool's commits, the purge and the
// store's figures.
func newObservability(o *opened) (*observability, error) {
	reg := prometheus.NewRegistry()
	ob := &observability{reg: reg}
	build := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "blindstore_build_info",
		Help:        "Always 1; the version label says which build runs.",
		ConstLabels: prometheus.Labels{"version": versionString()},
	})
	build.Set(1)
	if err := register(reg,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		build,
		&purgeCollector{ob: ob},
		newStoreCollector(o.store, o.bucketer),
	); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	var err error
	if ob.http, err = httpapi.NewMetrics(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if ob.commit, err = newCommitMetrics(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if ob.seal, err = newSealMetrics(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if ob.merge, err = newMergeMetrics(reg); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if rc, ok := o.store.(readCacher); ok {
		if _, _, _, on := rc.ReadCacheStats(); on {
			stat := func(pick func(hits, misses uint64, blocks int) float64) func() float64 {
				return func() float64 { h, m, b, _ := rc.ReadCacheStats(); return pick(h, m, b) }
			}
			if err := register(reg,
				prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "blindstore_read_cache_hits_total",
					Help: "Block reads answered from the read cache (PostgreSQL sent the unchanged ETag only)."},
					stat(func(h, _ uint64, _ int) float64 { return float64(h) })),
				prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "blindstore_read_cache_misses_total",
					Help: "Block reads whose data PostgreSQL sent (not cached, or changed)."},
					stat(func(_, m uint64, _ int) float64 { return float64(m) })),
				prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "blindstore_read_cache_blocks",
					Help: "Blocks in the read cache (at most --read-cache-mib of them)."},
					stat(func(_, _ uint64, b int) float64 { return float64(b) })),
			); err != nil {
				return nil, fmt.Errorf("metrics: %w", err)
			}
		}
	}
	return ob, nil
}

// readCacher is the PostgreSQL store's read cache, for its metrics.
type readCacher interface {
	ReadCacheStats() (hits, misses uint64, blocks int, ok bool)
}

// httpMetrics returns the API's metrics, nil when nothing is measured.
func (ob *observability) httpMetrics() *httpapi.Metrics {
	if ob == nil {
		return nil
	}
	return ob.http
}

// connState is the API server's ConnState hook, nil when nothing is
// measured.
func (ob *observability) connState() func(net.Conn, http.ConnState) {
	if ob == nil {
		return nil
	}
	return ob.http.ConnState
}

// schedulerHooks makes the scheduler report each seal and merge to the
// metrics.
func (ob *observability) schedulerHooks(cfg *scheduler.Config) {
	if ob == nil {
		return
	}
	prev := cfg.OnSeal
	cfg.OnSeal = func(rep blobstore.SealReport, err error) {
		ob.seal.observe(rep, err)
		if prev != nil {
			prev(rep, err)
		}
	}
	prevMerge := cfg.OnMerge
	cfg.OnMerge = func(rep blobstore.MergeReport, err error) {
		ob.merge.observe(rep, err)
		if prevMerge != nil {
			prevMerge(rep, err)
		}
	}
}

// watchScheduler gives the purge collector its source.
func (ob *observability) watchScheduler(p *scheduler.Purger, s *scheduler.Scheduler) {
	if ob == nil {
		return
	}
	ob.sched.Store(&schedSource{purger: p, sched: s})
}

// forPool returns o with its store wrapped so that the write pool's
// commits are timed and counted; the wrapper keeps the store's
// FencedStore side, which the Redis pool needs. Only the pool gets the
// wrapper: everything else keeps asking the store itself.
func (ob *observability) forPool(o *opened) *opened {
	if ob == nil {
		return o
	}
	w := observedStore{Store: o.store, m: ob.commit}
	if fs, ok := o.store.(pool.FencedStore); ok {
		return &opened{store: observedFencedStore{observedStore: w, fenced: fs}, bucketer: o.bucketer}
	}
	return &opened{store: w, bucketer: o.bucketer}
}

// start serves the admin listener when --admin-listen is set and returns
// a function that stops it. With the flag empty it returns a nil
// observability, and serve measures nothing.
// bind listens on --admin-listen, if set, before serve creates anything:
// an address in use fails the start with nothing left behind.
func (f *adminFlags) bind() error {
	if f.listen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("--admin-listen: %w", err)
	}
	f.ln = ln
	return nil
}

// unbind closes the listener bind opened if start never served it (a
// later start error); after start, its Shutdown closes it.
func (f *adminFlags) unbind() {
	if f.ln != nil {
		f.ln.Close()
	}
}

func (f *adminFlags) start(log *slog.Logger, o *opened) (*observability, func(context.Context) error, error) {
	if f.listen == "" {
		return nil, func(context.Context) error { return nil }, nil
	}
	if f.ln == nil {
		if err := f.bind(); err != nil {
			return nil, nil, err
		}
	}
	ob, err := newObservability(o)
	if err != nil {
		return nil, nil, err
	}
	ln := f.ln
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil && !ap.Addr().IsLoopback() {
		log.Warn("the admin listener is not on loopback: firewall it; its profiles show what the server does", "admin", "http://"+ln.Addr().String())
	}
	srv := &http.Server{
		Handler:           adminHandler(ob.reg, log),
		ReadHeaderTimeout: 10 * time.Second,
		// A CPU profile or a trace streams for up to a minute.
		WriteTimeout: 2 * time.Minute,
		IdleTimeout:  2 * time.Minute,
		// The API server's error log, which never names a client.
		ErrorLog: httpapi.NewServer(nil, httpapi.Options{Logger: log}).ErrorLog,
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener stopped", "err", err)
		}
	}()
	log.Info("admin listener serving /metrics, /healthz and /debug/pprof/", "admin", "http://"+ln.Addr().String())
	return ob, srv.Shutdown, nil
}

// maxProfileSeconds caps ?seconds= of the profile and trace pages, below
// the admin server's write timeout.
const maxProfileSeconds = 60

func adminHandler(reg *prometheus.Registry, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slogPrintln{log},
		ErrorHandling: promhttp.ContinueOnError,
	}))
	// Liveness for a monitor that watches the admin address only (the
	// API's /healthz may sit behind a proxy or TLS it cannot reach).
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "ok\n")
	})
	mux.HandleFunc("GET /debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		// debug=2 of the goroutine profile is a full dump, arguments
		// included: those can be a block ID's bytes.
		if d, _ := strconv.Atoi(r.URL.Query().Get("debug")); d >= 2 && strings.TrimPrefix(r.URL.Path, "/debug/pprof/") == "goroutine" {
			http.Error(w, "goroutine?debug=2 prints function arguments, which may hold block ids; use debug=1", http.StatusForbidden)
			return
		}
		pprof.Index(w, r)
	})
	capped := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s := r.URL.Query().Get("seconds"); s != "" {
				var n int
				if _, err := fmt.Sscan(s, &n); err != nil || n < 1 || n > maxProfileSeconds {
					http.Error(w, fmt.Sprintf("seconds must be 1 to %d", maxProfileSeconds), http.StatusBadRequest)
					return
				}
			}
			h(w, r)
		}
	}
	mux.HandleFunc("GET /debug/pprof/profile", capped(pprof.Profile))
	mux.HandleFunc("GET /debug/pprof/trace", capped(pprof.Trace))
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	// /debug/pprof/cmdline is left out on purpose: flags may carry
	// --bucket-key or a database password.
	mux.HandleFunc("GET /debug/pprof/cmdline", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not served: the command line may hold secrets", http.StatusNotFound)
	})
	return mux
}

// slogPrintln adapts promhttp's error log.
type slogPrintln struct{ log *slog.Logger }

func (s slogPrintln) Println(v ...any) { s.log.Warn("metrics: " + fmt.Sprint(v...)) }

// commitMetrics time and count the write pool's commits.
type commitMetrics struct {
	ops     prometheus.Histogram
	seconds prometheus.Histogram
	commits *prometheus.CounterVec
}

func newCommitMetrics(reg prometheus.Registerer) (*commitMetrics, error) {
	m := &commitMetrics{
		ops: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blindstore_pool_batch_ops",
			Help:    "Operations (puts, deletes, renewals) per commit of the write pool: how many writes each commit mixes.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 14), // 1 to 8192
		}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blindstore_pool_commit_seconds",
			Help:    "Time of one commit of the write pool to the store.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16), // 0.5 ms to 16 s
		}),
		commits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindstore_pool_commits_total",
			Help: "Commits of the write pool, by result: ok, or error (store down, fenced off, or refused).",
		}, []string{"result"}),
	}
	if err := register(reg, m.ops, m.seconds, m.commits); err != nil {
		return nil, err
	}
	m.commits.WithLabelValues("ok")
	m.commits.WithLabelValues("error")
	return m, nil
}

func (m *commitMetrics) observe(n int, start time.Time, err error) {
	m.ops.Observe(float64(n))
	m.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		m.commits.WithLabelValues("error").Inc()
	} else {
		m.commits.WithLabelValues("ok").Inc()
	}
}

// observedStore is a store whose Apply (the in-process pool's commit) is
// measured.
type observedStore struct {
	blobstore.Store
	m *commitMetrics
}

func (s observedStore) Apply(ctx context.Context, ops []blobstore.Op) ([]blobstore.Result, error) {
	start := time.Now()
	rs, err := s.Store.Apply(ctx, ops)
	s.m.observe(len(ops), start, err)
	return rs, err
}

// observedFencedStore adds the measured fenced commit of the Redis pool.
type observedFencedStore struct {
	observedStore
	fenced pool.FencedStore
}

func (s observedFencedStore) Fence(ctx context.Context, token [16]byte) ([16]byte, error) {
	return s.fenced.Fence(ctx, token)
}

func (s observedFencedStore) ApplyFenced(ctx context.Context, token, prev, batch [16]byte, ops []blobstore.Op) ([]blobstore.Result, error) {
	start := time.Now()
	rs, err := s.fenced.ApplyFenced(ctx, token, prev, batch, ops)
	s.m.observe(len(ops), start, err)
	return rs, err
}

// register registers cs with reg, stopping at the first refused.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// sealMetrics measure what seals cost: the design's price of erasing
// write order is one more write of each block.
type sealMetrics struct {
	seconds prometheus.Histogram
	blocks  prometheus.Counter
	leases  prometheus.Counter
	bytes   prometheus.Counter
}

func newSealMetrics(reg prometheus.Registerer) (*sealMetrics, error) {
	m := &sealMetrics{
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blindstore_seal_duration_seconds",
			Help:    "Time of the scheduled seals that succeeded.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14), // 10 ms to about 80 s
		}),
		blocks: prometheus.NewCounter(prometheus.CounterOpts{Name: "blindstore_seal_blocks_total", Help: "Blocks whose data scheduled seals rewrote."}),
		leases: prometheus.NewCounter(prometheus.CounterOpts{Name: "blindstore_seal_leases_total", Help: "Lease records scheduled seals rewrote."}),
		bytes:  prometheus.NewCounter(prometheus.CounterOpts{Name: "blindstore_seal_bytes_total", Help: "Bytes of block data scheduled seals rewrote."}),
	}
	if err := register(reg, m.seconds, m.blocks, m.leases, m.bytes); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *sealMetrics) observe(rep blobstore.SealReport, err error) {
	if err != nil {
		return // counted by the scheduler's SealFailed
	}
	m.seconds.Observe(rep.Duration.Seconds())
	m.blocks.Add(float64(rep.Blocks))
	m.leases.Add(float64(rep.Leases))
	m.bytes.Add(float64(rep.Bytes))
}

// mergeMetrics measure what the period merges cost: at most one more
// write of what the period placed, reported per byte stored.
type mergeMetrics struct {
	runs    prometheus.Counter
	failed  prometheus.Counter
	seconds prometheus.Histogram
	bytes   prometheus.Counter
	cost    prometheus.Gauge
}

func newMergeMetrics(reg prometheus.Registerer) (*mergeMetrics, error) {
	m := &mergeMetrics{
		runs:   prometheus.NewCounter(prometheus.CounterOpts{Name: "blindstore_merge_runs_total", Help: "Period merges this instance ran."}),
		failed: prometheus.NewCounter(prometheus.CounterOpts{Name: "blindstore_merge_failed_total", Help: "Period merges that failed (the next run does it again)."}),
		seconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "blindstore_merge_duration_seconds",
			Help:    "Time of the period merges that succeeded.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 18), // 10 ms to about 20 min
		}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "blindstore_merge_bytes_total", Help: "Bytes (block data and lease rows) period merges rewrote."}),
		cost: prometheus.NewGauge(prometheus.GaugeOpts{Name: "blindstore_merge_bytes_per_byte_stored",
			Help: "The last period merge's bytes rewritten per byte of block data stored."}),
	}
	if err := register(reg, m.runs, m.failed, m.seconds, m.bytes, m.cost); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *mergeMetrics) observe(rep blobstore.MergeReport, err error) {
	m.runs.Inc()
	if err != nil {
		m.failed.Inc()
		return
	}
	m.seconds.Observe(rep.Duration.Seconds())
	m.bytes.Add(float64(rep.Bytes))
	m.cost.Set(rep.Cost())
}

// purgeCollector exports the purger's and the scheduler's running totals
// (scheduler.Counters and scheduler.Stats), read at each scrape.
type purgeCollector struct{ ob *observability }

var (
	descPurgeRuns     = prometheus.NewDesc("blindstore_purge_runs_total", "Purges that completed on this instance, dry runs included.", nil, nil)
	descPurgeDeleted  = prometheus.NewDesc("blindstore_purge_deleted_blocks_total", "Blocks deleted by purges on this instance.", nil, nil)
	descPurgeRefused  = prometheus.NewDesc("blindstore_purge_refused_total", "Purges a guard refused, by guard (key, clock, fraction): each needs an operator.", []string{"guard"}, nil)
	descPurgeFailed   = prometheus.NewDesc("blindstore_purge_failed_total", "Purges that ended on a store error.", nil, nil)
	descPurgeStarted  = prometheus.NewDesc("blindstore_scheduler_purge_started_total", "Scheduled purges this instance started, refused or not.", nil, nil)
	descPurgeSkipped  = prometheus.NewDesc("blindstore_scheduler_purge_skipped_total", "Scheduled purges this instance skipped because another instance had the run, or an earlier run still held it.", nil, nil)
	descLockerErrored = prometheus.NewDesc("blindstore_scheduler_locker_errors_total", "Scheduled runs skipped because the shared locker (Redis) could not be asked.", nil, nil)
	descSealRuns      = prometheus.NewDesc("blindstore_seal_runs_total", "Scheduled seals this instance ran.", nil, nil)
	descSealFailed    = prometheus.NewDesc("blindstore_seal_failed_total", "Scheduled seals that failed (the next one finishes the work).", nil, nil)
)

func (c *purgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPurgeRuns, descPurgeDeleted, descPurgeRefused, descPurgeFailed, descPurgeStarted, descPurgeSkipped, descLockerErrored, descSealRuns, descSealFailed} {
		ch <- d
	}
}

func (c *purgeCollector) Collect(ch chan<- prometheus.Metric) {
	var pc scheduler.Counters
	var ss scheduler.Stats
	if src := c.ob.sched.Load(); src != nil {
		ss = src.sched.Stats()
		if src.purger != nil {
			pc = src.purger.Counters()
		}
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descPurgeRuns, pc.Runs)
	counter(descPurgeDeleted, pc.Deleted)
	for _, g := range []scheduler.Guard{scheduler.GuardKey, scheduler.GuardClock, scheduler.GuardFraction} {
		counter(descPurgeRefused, pc.Refused(g), g.String())
	}
	counter(descPurgeFailed, pc.Failed)
	counter(descPurgeStarted, ss.PurgeRuns)
	counter(descPurgeSkipped, ss.PurgeSkipped)
	counter(descLockerErrored, ss.LockerErrored)
	counter(descSealRuns, ss.SealRuns)
	counter(descSealFailed, ss.SealFailed)
}

// storeCollector exports the store's aggregate figures. Counting blocks
// reads every lease on PostgreSQL, so a scrape reuses figures younger
// than storeStatsMaxAge.
type storeCollector struct {
	store blobstore.Store
	bk    *bucketer.Bucketer

	mu     sync.Mutex
	at     time.Time
	stats  blobstore.Stats
	seal   *blobstore.SealStats // nil: the store does not seal, or not read
	err    error
	errors uint64
}

// sealCounter is a store that keeps what awaits its next seal apart.
type sealCounter interface {
	SealStats(context.Context) (blobstore.SealStats, error)
}

const (
	storeStatsMaxAge  = 15 * time.Second
	storeStatsTimeout = 10 * time.Second
)

var (
	descStoreBlocks  = prometheus.NewDesc("blindstore_store_blocks", "Blocks in the store.", nil, nil)
	descStoreExpired = prometheus.NewDesc("blindstore_store_blocks_expired", "Blocks whose bucket has left the live set: the next purge deletes them.", nil, nil)
	descStoreBuckets = prometheus.NewDesc("blindstore_store_buckets", "Distinct buckets in the store; more than the retention means expired blocks wait for a purge.", nil, nil)
	descStoreErrors  = prometheus.NewDesc("blindstore_store_stats_errors_total", "Scrapes whose store figures could not be read.", nil, nil)
	descStoreUp      = prometheus.NewDesc("blindstore_store_stats_up", "1 if the last reading of the store's figures succeeded.", nil, nil)
	descStoreUnseal  = prometheus.NewDesc("blindstore_store_blocks_awaiting_seal", "Blocks changed since the last seal: until it runs, a copy shows which were written together.", nil, nil)
)

func newStoreCollector(st blobstore.Store, bk *bucketer.Bucketer) *storeCollector {
	return &storeCollector{store: st, bk: bk}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStoreBlocks, descStoreExpired, descStoreBuckets, descStoreErrors, descStoreUp, descStoreUnseal} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) >= storeStatsMaxAge {
		ctx, cancel := context.WithTimeout(context.Background(), storeStatsTimeout)
		st, err := c.store.Stats(ctx)
		var seal *blobstore.SealStats
		if sc, ok := c.store.(sealCounter); ok && err == nil {
			var ss blobstore.SealStats
			if ss, err = sc.SealStats(ctx); err == nil {
				seal = &ss
			}
		}
		cancel()
		c.at, c.err = time.Now(), err
		if err != nil {
			c.errors++
		} else {
			c.stats, c.seal = st, seal
		}
	}
	up := 1.0
	if c.err != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(descStoreUp, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descStoreErrors, prometheus.CounterValue, float64(c.errors))
	if c.stats.Buckets == nil {
		return // never read
	}
	live := c.bk.Live()
	var expired int64
	for b, n := range c.stats.Buckets {
		if !live.Contains(b) {
			expired += n
		}
	}
	ch <- prometheus.MustNewConstMetric(descStoreBlocks, prometheus.GaugeValue, float64(c.stats.Blocks))
	ch <- prometheus.MustNewConstMetric(descStoreExpired, prometheus.GaugeValue, float64(expired))
	ch <- prometheus.MustNewConstMetric(descStoreBuckets, prometheus.GaugeValue, float64(len(c.stats.Buckets)))
	if c.seal != nil {
		ch <- prometheus.MustNewConstMetric(descStoreUnseal, prometheus.GaugeValue, float64(c.seal.Blocks))
	}
}
