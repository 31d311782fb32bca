package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/blobstore/postgres"
)

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", level)}
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// beginServer is where serve and issuer begin alike: no arguments, then
// the logger at the chosen level and the TLS configuration, if any.
func beginServer(args []string, stderr io.Writer, level string, tf *tlsFlags) (*slog.Logger, *tls.Config, error) {
	if len(args) > 0 {
		return nil, nil, usageError{fmt.Errorf("unexpected arguments %q", strings.Join(args, " "))}
	}
	log, err := newLogger(stderr, level)
	if err != nil {
		return nil, nil, err
	}
	tlsConfig, err := tf.config(log)
	if err != nil {
		return nil, nil, err
	}
	return log, tlsConfig, nil
}

// urlScheme is the scheme clients reach a server by.
func urlScheme(tlsConfig *tls.Config) string {
	if tlsConfig != nil {
		return "https"
	}
	return "http"
}

// serveUntilDone serves srv on ln (over TLS when tlsConfig is set; the
// certificate comes from it) until ctx ends, and returns nil then, or the
// error that stopped serving. The caller shuts srv down.
func serveUntilDone(ctx context.Context, srv *http.Server, ln net.Listener, tlsConfig *tls.Config) error {
	errc := make(chan error, 1)
	go func() {
		if tlsConfig != nil {
			errc <- srv.ServeTLS(ln, "", "")
			return
		}
		errc <- srv.Serve(ln)
	}()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		return nil
	}
}

func serveCommand(stdout, stderr io.Writer) *command {
	c := &command{name: "serve", summary: "Serve the block API.", flags: newFlagSet("serve")}
	var sf storeFlags
	sf.register(c.flags)
	listen := c.flags.String("listen", "127.0.0.1:7878", "`address` to serve the API on (port 0 picks a free one)")
	logLevel := c.flags.String("log-level", "info", "log `level`: debug, info, warn or error (no level logs ids, proofs, ETags or addresses)")
	maxHeader := c.flags.Int("max-header-bytes", 16<<10, "largest request header block in `bytes`")
	renewBatch := c.flags.Int("renew-batch", blobstore.DefaultLimits.RenewBatch, "most blocks in one renew request")
	writeBatch := c.flags.Int("write-batch", blobstore.DefaultLimits.WriteBatch, "most blocks in one batch write")
	probeRate := c.flags.Float64("probe-rate", 5, "failed probes (404 reads, 403 writes) allowed per second per client address")
	probeBurst := c.flags.Int("probe-burst", 50, "failed probes allowed in a burst per client address")
	trustProxy := c.flags.String("trust-proxy-header", "", "take the client address for rate limits from this `header` (e.g. X-Forwarded-For), set only behind a proxy you trust")
	shutdown := c.flags.Duration("shutdown-timeout", 30*time.Second, "how long to let requests finish on SIGINT or SIGTERM")
	readCache := c.flags.Int("read-cache-mib", 256, "on PostgreSQL, `MiB` of recently read blocks kept in memory; each read still asks PostgreSQL, which sends an unchanged block's ETag instead of its data (0 keeps none; the embedded store reads from the kernel's page cache)")
	// Scheduled jobs (purge): flags and start/stop live in purge.go.
	var sched schedFlags
	sched.register(c.flags)
	// The write pool (and the probe limiter that goes with it): pool.go.
	var pf poolFlags
	pf.register(c.flags)
	// TLS (tls.go) and the admin listener for metrics and pprof (admin.go).
	var tf tlsFlags
	tf.register(c.flags)
	var af adminFlags
	af.register(c.flags)
	// What writes cost (tokens, or the open store's limits): quota.go.
	var qf quotaFlags
	qf.register(c.flags)
	// Client timeouts and the connection cap: timeouts.go, conns.go.
	var tof timeoutFlags
	tof.register(c.flags)
	// The browser app and CORS: web.go.
	var wf webFlags
	wf.register(c.flags)
	c.run = func(args []string) error {
		log, tlsConfig, err := beginServer(args, stderr, *logLevel, &tf)
		if err != nil {
			return err
		}
		if *readCache < 0 {
			return usageError{fmt.Errorf("--read-cache-mib must be 0 or more, got %d", *readCache)}
		}
		sf.readCache = int64(*readCache) << 20
		// Bind both listeners before anything is created: a port in use
		// must not leave a new bucket key and an empty store behind.
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		// Serve closes it too; a second Close is harmless.
		defer ln.Close()
		if err := af.bind(); err != nil {
			return err
		}
		defer af.unbind()
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()

		o, err := sf.open(ctx, log, true)
		if err != nil {
			return err
		}
		storeOpen := true
		defer func() {
			if storeOpen {
				o.store.Close()
			}
		}()
		ob, stopAdmin, err := af.start(log, o)
		if err != nil {
			return err
		}
		defer stopAdmin(context.Background())
		sched.observe, sched.hooks = ob.watchScheduler, ob.schedulerHooks
		// The write pool stops before the store closes, like the scheduler.
		wp, err := pf.start(ctx, log, &sf, sched.redis, ob.forPool(o), *probeRate, *probeBurst)
		if err != nil {
			return err
		}
		poolOpen := true
		defer func() {
			if poolOpen {
				wp.close()
			}
		}()
		q, err := qf.start(ctx, log, &sf, *writeBatch)
		if err != nil {
			return err
		}
		defer q.close()
		svc, err := blobstore.NewService(blobstore.ServiceConfig{
			Store: o.store, Bucketer: o.bucketer, BlockSize: sf.blockSize,
			Limits:    blobstore.Limits{RenewBatch: qf.renewBatch(*renewBatch, *writeBatch), WriteBatch: *writeBatch},
			Committer: wp.committer,
			MaxBlocks: qf.maxBlocks,
		})
		if err != nil {
			return usageError{err}
		}
		opt := httpapi.Options{
			Logger:           log,
			Version:          versionString(),
			MaxHeaderBytes:   *maxHeader,
			ProbeLimit:       wp.probe,
			Ready:            wp.ready,
			TrustProxyHeader: *trustProxy,
			Metrics:          ob.httpMetrics(),
			PoolWindow:       pf.window,
		}
		q.apply(&opt)
		wf.apply(&opt)
		if err := tof.apply(&opt); err != nil {
			return err
		}
		api := httpapi.New(svc, opt)
		h, err := wf.wrap(api, qf.issuer)
		if err != nil {
			return err
		}
		srv := httpapi.NewServer(h, opt)
		srv.MaxHeaderBytes = hardHeaderCap(*maxHeader) // conns.go
		srv.ConnState = ob.connState()
		srv.TLSConfig = tlsConfig
		ln = newLimitListener(ln, tof.maxConns) // conns.go; tof.apply checked the count
		if tlsConfig == nil && !wf.web {
			// Plain block reads are answered before net/http (httpapi's
			// fast.go): over TLS the listener's bytes are records, and
			// the web app's handler stands in front of the API's.
			ln = httpapi.FastReads(ln, api, srv.ConnState)
		}
		// The scheduler stops before the store closes: explicitly below,
		// and by this defer (which runs before the store's) on errors.
		stopSched, err := sched.start(ctx, log, o)
		if err != nil {
			return err
		}
		defer stopSched()
		where := "embedded store in " + sf.data
		if sf.isPostgres() {
			where = "PostgreSQL"
		}
		log.Info("blindstored serving", "url", urlScheme(tlsConfig)+"://"+ln.Addr().String(), "store", where, "version", versionString(), "web_app", wf.web)

		if err := serveUntilDone(ctx, srv, ln, tlsConfig); err != nil {
			return err
		}
		log.Info("shutting down: finishing requests in flight", "timeout", *shutdown)
		sctx, cancel := context.WithTimeout(context.Background(), *shutdown)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("shutdown did not finish cleanly", "err", err)
		}
		if err := stopAdmin(sctx); err != nil {
			log.Warn("admin listener did not stop cleanly", "err", err)
		}
		if err := stopSched(); err != nil {
			log.Warn("scheduler did not stop cleanly", "err", err)
		}
		poolOpen = false
		if err := wp.close(); err != nil {
			log.Warn("write pool did not stop cleanly", "err", err)
		}
		storeOpen = false
		if err := o.store.Close(); err != nil {
			return fmt.Errorf("close store: %w", err)
		}
		log.Info("stopped")
		return nil
	}
	return c
}

func migrateCommand(stdout, stderr io.Writer) *command {
	c := &command{name: "migrate", usage: "--store postgres://…", summary: "Apply the PostgreSQL schema migrations (serve also applies them at start).", flags: newFlagSet("migrate")}
	store := c.flags.String("store", "", "PostgreSQL `URL` (postgres://user@host/db)")
	c.run = func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments")}
		}
		sf := storeFlags{store: *store}
		if !sf.isPostgres() {
			return usageError{fmt.Errorf("--store must be a postgres:// URL; the embedded store brings its file to the current layout itself when serve (or any command) opens it")}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		// stdout says what was applied; the store's own lines would repeat it.
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		applied, version, err := postgres.MigrateApplied(ctx, *store, log)
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, migrateSummary(applied, version))
		return nil
	}
	return c
}

// migrateSummary is what migrate prints: each migration it applied, then
// the version the schema is at.
func migrateSummary(applied []string, version int) string {
	if len(applied) == 0 {
		return fmt.Sprintf("nothing to apply: the schema is up to date (version %d)\n", version)
	}
	var b strings.Builder
	for _, name := range applied {
		fmt.Fprintf(&b, "applied %s\n", name)
	}
	fmt.Fprintf(&b, "the schema is up to date (version %d) after %d migration%s\n", version, len(applied), map[bool]string{true: "", false: "s"}[len(applied) == 1])
	return b.String()
}
