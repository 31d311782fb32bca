package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// storeFlags are the flags every command that opens the store shares.
type storeFlags struct {
	store     string
	data      string
	blockSize int
	period    time.Duration
	retention int
	key       string
	keyFile   string
	// readCache is the PostgreSQL store's read cache in bytes; only
	// serve sets it (--read-cache-mib).
	readCache int64
}

func (s *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&s.store, "store", "", "store `URL`: empty for the embedded store in --data, or postgres://user@host/db for PostgreSQL")
	fs.StringVar(&s.data, "data", "./data", "data `directory` of the embedded store and of the generated bucket key")
	fs.IntVar(&s.blockSize, "block-size", wire.DefaultBlockSize, "block size in `bytes` (a power of two; fixed when the store is created)")
	fs.DurationVar(&s.period, "period", bucketer.DefaultPeriod, "length of a time bucket (Go duration, whole seconds)")
	fs.IntVar(&s.retention, "retention", bucketer.DefaultRetention, "`periods` a block lives without renewal (R: at least R-1, less than R)")
	fs.StringVar(&s.key, "bucket-key", "", "bucket key as 64 hex `characters` (prefer --bucket-key-file: flags show in ps)")
	fs.StringVar(&s.keyFile, "bucket-key-file", "", "bucket key `file` (default DATA/bucket.key, created with mode 0600 at first start)")
}

func (s *storeFlags) keyPath() string {
	if s.keyFile != "" {
		return s.keyFile
	}
	return filepath.Join(s.data, "bucket.key")
}

func (s *storeFlags) isPostgres() bool {
	return strings.HasPrefix(s.store, "postgres://") || strings.HasPrefix(s.store, "postgresql://")
}

// opened is a store with the bucketer that goes with it.
type opened struct {
	store    blobstore.Store
	bucketer *bucketer.Bucketer
}

// open loads (or, when create is set and none exists, creates) the bucket
// key and opens the store with it. A key created here is removed again if
// the store refuses it, so a mistaken first start leaves nothing behind.
func (s *storeFlags) open(ctx context.Context, log *slog.Logger, create bool) (*opened, error) {
	if s.store != "" && !s.isPostgres() {
		return nil, usageError{fmt.Errorf("--store %q: want empty (embedded store) or a postgres:// URL", redactURL(s.store))}
	}
	if err := wire.ValidateBlockSize(s.blockSize); err != nil {
		return nil, usageError{err}
	}
	key, created, err := loadKey(s.key, s.keyPath(), create)
	if err != nil {
		return nil, err
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: s.period, Retention: s.retention})
	if err != nil {
		return nil, usageError{err}
	}
	if created {
		log.Info("created a new bucket key; back it up: losing it makes every block look expired", "file", s.keyPath())
	}
	params := blobstore.Params{BlockSize: s.blockSize, Fingerprint: bk.Fingerprint()}
	var st blobstore.Store
	if s.isPostgres() {
		st, err = postgres.Open(ctx, s.store, params, postgres.Options{Logger: log, ReadCache: s.readCache})
	} else {
		if err := os.MkdirAll(s.data, 0o700); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
		st, err = bolt.Open(s.boltPath(), params)
	}
	if err != nil {
		if created {
			os.Remove(s.keyPath())
		}
		if errors.Is(err, blobstore.ErrParamsMismatch) {
			return nil, fmt.Errorf("%w (the store keeps its block size and bucket key for life: start with the ones it was created with)", err)
		}
		return nil, err
	}
	return &opened{store: st, bucketer: bk}, nil
}

// boltPath is the embedded store's file in the data directory.
func (s *storeFlags) boltPath() string { return filepath.Join(s.data, "blocks.db") }

// openExisting opens a store that must already exist, for the one-off
// commands (purge, seal): it never creates a bucket key, under which every
// block would look expired, nor an empty embedded store, whose purge or
// seal of nothing would hide a mistyped --data.
func (s *storeFlags) openExisting(ctx context.Context, log *slog.Logger) (*opened, error) {
	if !s.isPostgres() && s.store == "" {
		if _, err := os.Stat(s.boltPath()); err != nil {
			return nil, fmt.Errorf("no embedded store in %s (%v): give the --data directory blindstored serve uses", s.data, err)
		}
	}
	return s.open(ctx, log, false)
}

// oneOff is what the one-off store commands (purge, seal) share: the
// store flags, a log level for the store's messages, no arguments, a
// context that SIGINT and SIGTERM end, and a store that must already exist.
type oneOff struct {
	sf       storeFlags
	logLevel *string
}

func (t *oneOff) register(fs *flag.FlagSet) {
	t.sf.register(fs)
	t.logLevel = fs.String("log-level", "warn", "log `level` of the store's messages: debug, info, warn or error")
}

// run opens the store and hands it to fn; the store is closed after.
func (t *oneOff) run(stderr io.Writer, args []string, fn func(ctx context.Context, o *opened) error) error {
	if len(args) > 0 {
		return usageError{fmt.Errorf("unexpected arguments")}
	}
	log, err := newLogger(stderr, *t.logLevel)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	o, err := t.sf.openExisting(ctx, log)
	if err != nil {
		return err
	}
	defer o.store.Close()
	return fn(ctx, o)
}

// redactURL drops a password from a URL before it is printed.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	cred := u[scheme+3 : at]
	if i := strings.Index(cred, ":"); i >= 0 {
		return u[:scheme+3] + cred[:i] + ":xxxxx" + u[at:]
	}
	return u
}
