package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/blobstore/pool"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
)

// blockServer is a running block API: a blindstored child, or the same
// stack served from this process (-inprocess) so that a CPU profile of
// the bench covers the server's code.
type blockServer interface {
	baseURL() string
	// memPID is the process whose memory is the server's, or 0 when the
	// server shares this process.
	memPID() int
	// bucketKey and dataDir are what a store opened after the server
	// stopped needs: the key its buckets are made with, and where the
	// embedded store's file is.
	bucketKey() []byte
	dataDir() string
	stop() error
	cleanup()
}

func (c *child) baseURL() string   { return c.url }
func (c *child) memPID() int       { return c.pid() }
func (c *child) bucketKey() []byte { return c.key }
func (c *child) dataDir() string   { return c.data }

// inprocServer is blindstored serve's stack (store, write pool, service,
// HTTP API) in this process. It follows cmd/blindstored/serve.go, with
// the server's defaults; it leaves out what a benchmark never meets
// (scheduled purges, Redis, signals).
type inprocServer struct {
	srv   *http.Server
	url   string
	store blobstore.Store
	pool  *pool.Pool
	data  string
	key   []byte
}

// startInProcess starts the stack; window is serve's --pool-window (0:
// no window).
func startInProcess(ctx context.Context, spec serverSpec, window time.Duration) (*inprocServer, error) {
	data, err := os.MkdirTemp("", "blindbench-inproc-")
	if err != nil {
		return nil, err
	}
	s := &inprocServer{data: data}
	ok := false
	defer func() {
		if !ok {
			s.cleanup()
		}
	}()
	key, err := bucketer.NewKey()
	if err != nil {
		return nil, err
	}
	s.key = key
	period := spec.period
	if period == 0 {
		period = bucketer.DefaultPeriod
	}
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: period, Retention: bucketer.DefaultRetention})
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	params := blobstore.Params{BlockSize: spec.blockSize, Fingerprint: bk.Fingerprint()}
	if spec.store != "" {
		s.store, err = postgres.Open(ctx, spec.store, params, postgres.Options{Logger: quiet})
	} else {
		s.store, err = bolt.Open(filepath.Join(data, "blocks.db"), params)
	}
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	s.pool = pool.New(s.store, pool.Options{Window: pool.WindowOption(window), Logger: quiet})
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: s.store, Bucketer: bk, BlockSize: spec.blockSize, Committer: s.pool})
	if err != nil {
		return nil, err
	}
	opt := httpapi.Options{Logger: quiet, Version: "blindbench"}
	s.srv = httpapi.NewServer(httpapi.New(svc, opt), opt)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.url = "http://" + ln.Addr().String()
	go func() { _ = s.srv.Serve(ln) }()
	ok = true
	return s, nil
}

func (s *inprocServer) baseURL() string   { return s.url }
func (s *inprocServer) memPID() int       { return 0 }
func (s *inprocServer) bucketKey() []byte { return s.key }
func (s *inprocServer) dataDir() string   { return s.data }

func (s *inprocServer) stop() error {
	var errs []error
	if s.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
		cancel()
		s.srv = nil
	}
	if s.pool != nil {
		errs = append(errs, s.pool.Close())
		s.pool = nil
	}
	if s.store != nil {
		errs = append(errs, s.store.Close())
		s.store = nil
	}
	return errors.Join(errs...)
}

func (s *inprocServer) cleanup() {
	_ = s.stop()
	os.RemoveAll(s.data)
}
