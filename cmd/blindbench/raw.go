package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.etcd.io/bbolt"
)

// benchPassword is a fresh password for an account or repository the
// bench makes.
func benchPassword() string {
	var b [12]byte
	fillRandom(b[:])
	return fmt.Sprintf("bench-%x", b)
}

func fillRandom(b []byte) {
	if _, err := rand.Read(b); err != nil {
		// crypto/rand does not fail on Linux; a bench without
		// randomness would measure nothing real.
		panic(err)
	}
}

// blockStore is what the block API rows do to a store: write a new block,
// read one back into the worker's buffer.
type blockStore interface {
	put(ctx context.Context, w int) error
	get(ctx context.Context, w int) error
}

// rawBolt is the embedded store's baseline: bbolt alone, with the store's
// options, one nested bucket per block (the store's data layout without
// anything around it, and what bbolt writes least for a 64 KiB value),
// and concurrent puts gathered by bbolt's own Batch. Batch's size is set
// to the number of workers, so a batch commits as soon as every worker
// is in it: with one worker that is one Update per put, with more it is
// group commit, as the store does.
type rawBolt struct {
	db   *bbolt.DB
	pl   *payloads
	ids  idSet
	bufs [][]byte
}

var rawBucket = []byte("raw")

func openRawBolt(dir string, pl *payloads, workers int) (*rawBolt, error) {
	db, err := bbolt.Open(filepath.Join(dir, "raw.db"), 0o600, &bbolt.Options{
		Timeout: 2 * time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("raw bbolt: %w", err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucketIfNotExists(rawBucket); return err }); err != nil {
		db.Close()
		return nil, fmt.Errorf("raw bbolt: %w", err)
	}
	r := &rawBolt{db: db, pl: pl}
	r.setWorkers(workers)
	return r, nil
}

func (r *rawBolt) setWorkers(n int) {
	r.db.MaxBatchSize = n
	for len(r.bufs) < n {
		r.bufs = append(r.bufs, make([]byte, len(r.pl.data[0])))
	}
}

func (r *rawBolt) put(ctx context.Context, w int) error {
	id := wire.NewID()
	data, _ := r.pl.pick()
	err := r.db.Batch(func(tx *bbolt.Tx) error {
		nb, err := tx.Bucket(rawBucket).CreateBucketIfNotExists(id[:])
		if err != nil {
			return err
		}
		return nb.Put(id[:], data)
	})
	if err != nil {
		return fmt.Errorf("raw bbolt put: %w", err)
	}
	r.ids.add(id)
	return nil
}

func (r *rawBolt) get(ctx context.Context, w int) error {
	id, err := r.ids.pick()
	if err != nil {
		return err
	}
	buf := r.bufs[w]
	return r.db.View(func(tx *bbolt.Tx) error {
		nb := tx.Bucket(rawBucket).Bucket(id[:])
		if nb == nil {
			return errors.New("raw bbolt get: block missing")
		}
		if n := copy(buf, nb.Get(id[:])); n != len(buf) {
			return fmt.Errorf("raw bbolt get: %d bytes", n)
		}
		return nil
	})
}

func (r *rawBolt) close() error { return r.db.Close() }

// rawPG is PostgreSQL's baseline: rows identical to the store's (id,
// proof hash, ETag, data stored EXTERNAL) in a plain table, written one
// per COPY and read by primary key, through a pgx pool of the size the
// server's own pool has by default.
type rawPG struct {
	pool *pgxpool.Pool
	pl   *payloads
	ph   wire.ProofHash
	ids  idSet
}

func openRawPG(ctx context.Context, dbURL string, pl *payloads) (*rawPG, error) {
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		return nil, fmt.Errorf("raw PostgreSQL: %w", err)
	}
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_blocks (
			id uuid PRIMARY KEY, proof_hash bytea NOT NULL, etag bytea NOT NULL, data bytea NOT NULL);
		ALTER TABLE raw_blocks ALTER COLUMN data SET STORAGE EXTERNAL`); err != nil {
		pool.Close()
		return nil, fmt.Errorf("raw PostgreSQL: create table: %w", err)
	}
	w := newProof()
	return &rawPG{pool: pool, pl: pl, ph: w.Hash()}, nil
}

func (r *rawPG) put(ctx context.Context, w int) error {
	id := wire.NewID()
	data, etag := r.pl.pick()
	row := []any{pgtype.UUID{Bytes: id, Valid: true}, r.ph[:], etag[:], data}
	if _, err := r.pool.CopyFrom(ctx, pgx.Identifier{"raw_blocks"}, []string{"id", "proof_hash", "etag", "data"}, pgx.CopyFromRows([][]any{row})); err != nil {
		return fmt.Errorf("raw PostgreSQL COPY: %w", err)
	}
	r.ids.add(id)
	return nil
}

func (r *rawPG) get(ctx context.Context, w int) error {
	id, err := r.ids.pick()
	if err != nil {
		return err
	}
	var data []byte
	if err := r.pool.QueryRow(ctx, "SELECT data FROM raw_blocks WHERE id = $1", pgtype.UUID{Bytes: id, Valid: true}).Scan(&data); err != nil {
		return fmt.Errorf("raw PostgreSQL SELECT: %w", err)
	}
	if len(data) != len(r.pl.data[0]) {
		return fmt.Errorf("raw PostgreSQL SELECT: %d bytes", len(data))
	}
	return nil
}

func (r *rawPG) close() error { r.pool.Close(); return nil }

// bareHTTP is the transport's baseline: a loopback HTTP server that
// discards what is PUT and answers every GET with the same block, driven
// by the same client code as the real server.
type bareHTTP struct {
	srv *http.Server
	url string
}

func startBareHTTP(blockSize int) (*bareHTTP, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	block := make([]byte, blockSize)
	fillRandom(block)
	length := strconv.Itoa(blockSize)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut:
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet:
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", length)
			_, _ = w.Write(block)
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return &bareHTTP{srv: srv, url: "http://" + ln.Addr().String()}, nil
}

func (b *bareHTTP) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.srv.Shutdown(ctx)
}

// pgAdmin creates the bench's own databases on one server and drops them
// all at the end, whatever happened in between.
type pgAdmin struct {
	base *url.URL
	conn *pgx.Conn
	mu   sync.Mutex
	dbs  []string
}

// connectPG connects to the server of rawURL, or says why it cannot, in
// one line that names the URL without its password.
func connectPG(ctx context.Context, rawURL string) (*pgAdmin, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("%s is not a postgres:// URL", redactURL(rawURL))
	}
	if !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("%s is not on a loopback address: the bench loads the server hard and talks only to this machine", redactURL(rawURL))
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, rawURL)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s is not reachable: %s", redactURL(rawURL), firstLine(err.Error()))
	}
	return &pgAdmin{base: u, conn: conn}, nil
}

func isLoopbackHost(h string) bool {
	if h == "" || h == "localhost" || strings.HasPrefix(h, "/") {
		return true // the default host, or a Unix socket directory
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// create makes a fresh database and returns its URL.
func (a *pgAdmin) create(ctx context.Context, purpose string) (string, error) {
	var b [4]byte
	fillRandom(b[:])
	name := "blindbench_" + purpose + "_" + hex.EncodeToString(b[:])
	a.mu.Lock()
	defer a.mu.Unlock()
	// template0: nobody connects to it, so this never fails because
	// another session (a test running beside the bench) uses template1.
	if _, err := a.conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE template0"); err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	a.dbs = append(a.dbs, name)
	u := *a.base
	u.Path = "/" + name
	return u.String(), nil
}

// close drops every database create made, ending their sessions.
func (a *pgAdmin) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.mu.Lock()
	defer a.mu.Unlock()
	var errs []error
	for _, name := range a.dbs {
		if _, err := a.conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", name, err))
		}
	}
	a.dbs = nil
	errs = append(errs, a.conn.Close(ctx))
	return errors.Join(errs...)
}

// redactURL drops a password from a URL before it is printed.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// tempDir makes a directory for one row's files.
func tempDir(purpose string) (string, error) {
	return os.MkdirTemp("", "blindbench-"+purpose+"-")
}

// directStore is the real store (bolt or PostgreSQL) driven in-process
// through the Store interface, with neither HTTP nor the write pool: set
// beside ours and the raw store, it tells how much of a gap is the
// store's own and how much the server's around it. Writes are applied
// one op per call, as the service does for a single PUT without a pool
// (the store groups concurrent commits itself).
type directStore struct {
	s      blobstore.Store
	pl     *payloads
	ids    idSet
	bufs   [][]byte
	bucket bucketer.Bucket
	ph     wire.ProofHash
}

func newDirectStore(s blobstore.Store, pl *payloads, workers int) *directStore {
	d := &directStore{s: s, pl: pl}
	fillRandom(d.bucket[:])
	d.ph = newProof().Hash()
	d.setWorkers(workers)
	return d
}

func (d *directStore) setWorkers(n int) {
	for len(d.bufs) < n {
		d.bufs = append(d.bufs, make([]byte, 0, len(d.pl.data[0])))
	}
}

func (d *directStore) put(ctx context.Context, w int) error {
	data, etag := d.pl.pick()
	op := blobstore.Op{Kind: blobstore.OpPut, ID: wire.NewID(), ProofHash: d.ph, Data: data, ETag: etag,
		Bucket: d.bucket, Cond: blobstore.Cond{IfNoneMatchAny: true}}
	res, err := d.s.Apply(ctx, []blobstore.Op{op})
	if err != nil {
		return fmt.Errorf("store Apply: %w", err)
	}
	if res[0].Status != blobstore.StatusCreated {
		return fmt.Errorf("store Apply: %v", res[0].Status)
	}
	d.ids.add(op.ID)
	return nil
}

func (d *directStore) get(ctx context.Context, w int) error {
	id, err := d.ids.pick()
	if err != nil {
		return err
	}
	buf, _, err := d.s.Read(ctx, id, d.bufs[w])
	if err != nil {
		return fmt.Errorf("store Read: %w", err)
	}
	if len(buf) != len(d.pl.data[0]) {
		return fmt.Errorf("store Read: %d bytes", len(buf))
	}
	d.bufs[w] = buf
	return nil
}
