package main

// blindstored audit: what would a copy of this store reveal? It reads the
// store without writing to it and reports the block count, the buckets
// against the live set, and everything a copy would hold beyond the
// design: other tables, columns, buckets or keys, blocks of another size,
// and on PostgreSQL the settings and replication that keep write order or
// statements outside the tables. Findings make it exit 1, so that an
// operator can run it from cron; notes (what awaits a seal or a purge)
// are reported without failing.
//
// It reads the embedded store as a bbolt file opened read-only (the
// server must be stopped, as for purge: bbolt locks its file), and
// PostgreSQL in a read-only transaction plus the store's own Stats and
// SealStats. It never prints a block id, proof, ETag or bucket value.

import (
	"bytes"
	"context"
	be "encoding/binary" // aliased: the tests have a func binary
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/jackc/pgx/v5"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// errAuditFindings is returned when the audit found something off; the
// report says what.
var errAuditFindings = errors.New("the audit found what a copy of the store should not reveal (see above)")

func auditCommand(stdout, stderr io.Writer) *command {
	c := &command{
		name:    "audit",
		usage:   "[--store URL] [--data DIR] [--json]",
		summary: "Report what a copy of the store would reveal (block count, buckets against the live set, anything beyond the design, and PostgreSQL settings that keep write order); exit 1 if anything is off.",
		flags:   newFlagSet("audit"),
	}
	var sf storeFlags
	sf.register(c.flags)
	asJSON := c.flags.Bool("json", false, "print the report as one JSON object")
	c.run = func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments")}
		}
		if sf.store != "" && !sf.isPostgres() {
			return usageError{fmt.Errorf("--store %q: want empty (embedded store) or a postgres:// URL", redactURL(sf.store))}
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		// Never create a key: an audit under a made-up key would call
		// every bucket unknown.
		key, _, err := loadKey(sf.key, sf.keyPath(), false)
		if err != nil {
			return err
		}
		bk, err := bucketer.New(bucketer.Config{Key: key, Period: sf.period, Retention: sf.retention})
		if err != nil {
			return usageError{err}
		}
		var rep *auditReport
		if sf.isPostgres() {
			rep, err = auditPostgres(ctx, sf.store, bk)
		} else {
			rep, err = auditBolt(ctx, sf.boltPath(), bk)
			if err == nil {
				auditSpentBolt(filepath.Join(sf.data, "spent.db"), rep)
			}
		}
		if err != nil {
			return err
		}
		if *asJSON {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Fprintf(stdout, "%s\n", b)
		} else {
			rep.print(stdout)
		}
		if len(rep.Findings) > 0 {
			return errAuditFindings
		}
		return nil
	}
	return c
}

// auditReport is what the audit found. Counts only: it names tables,
// columns, settings and meta keys, never a block or a bucket.
type auditReport struct {
	Store          string               `json:"store"` // "embedded" or "postgresql"
	Blocks         int64                `json:"blocks"`
	Buckets        int                  `json:"buckets"`         // distinct buckets holding blocks
	LiveBuckets    int                  `json:"live_buckets"`    // of them, in the live set
	ExpiredBlocks  int64                `json:"expired_blocks"`  // in buckets of past periods: the next purge deletes them
	ExpiredBuckets int                  `json:"expired_buckets"` // past periods' buckets
	UnknownBlocks  int64                `json:"unknown_blocks"`  // in buckets of no period of this key
	UnknownBuckets int                  `json:"unknown_buckets"`
	OtherSize      int64                `json:"blocks_of_another_size"`
	AwaitingSeal   *blobstore.SealStats `json:"awaiting_seal,omitempty"`
	FreePages      *auditFreePages      `json:"free_pages,omitempty"`
	Settings       map[string]string    `json:"settings,omitempty"` // PostgreSQL settings read
	Findings       []string             `json:"findings"`
	Notes          []string             `json:"notes"`
	byBucket       map[bucketer.Bucket]int64
}

// auditFreePages is the embedded store's free pages: bbolt keeps what a
// freed page held until it is reused, and a seal overwrites them with
// zeros.
type auditFreePages struct {
	Free    int `json:"free"`
	NonZero int `json:"not_scrubbed"` // still holding old bytes
}

func (r *auditReport) finding(format string, args ...any) {
	r.Findings = append(r.Findings, fmt.Sprintf(format, args...))
}

func (r *auditReport) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// classify sorts the buckets holding blocks into live, expired (a past
// period of this key), future and unknown.
func (r *auditReport) classify(bk *bucketer.Bucketer) {
	cur := bk.Current()
	live := bk.Live()
	// Past periods of this key: as far back as a million periods (30
	// years of hours), which costs a fraction of a second of HMACs.
	past := map[bucketer.Bucket]bool{}
	ret := uint64(bk.Retention())
	if cur >= ret {
		lo := uint64(0)
		if cur > 1<<20 {
			lo = cur - 1<<20
		}
		need := false
		for b := range r.byBucket {
			if !live.Contains(b) {
				need = true
			}
		}
		for p := cur - ret + 1; need && p > lo; p-- {
			past[bk.Bucket(p-1)] = true
		}
	}
	future := map[bucketer.Bucket]bool{}
	for p := cur + 1; p <= cur+3; p++ {
		future[bk.Bucket(p)] = true
	}
	r.Buckets = len(r.byBucket)
	var futureBlocks int64
	for b, n := range r.byBucket {
		switch {
		case live.Contains(b):
			r.LiveBuckets++
		case past[b]:
			r.ExpiredBuckets++
			r.ExpiredBlocks += n
		case future[b]:
			futureBlocks += n
		default:
			r.UnknownBuckets++
			r.UnknownBlocks += n
		}
	}
	if r.ExpiredBlocks > 0 {
		r.note("%d blocks in %d buckets of past periods await a purge (is the purge running? blindstored purge --dry-run says)", r.ExpiredBlocks, r.ExpiredBuckets)
	}
	if futureBlocks > 0 {
		r.finding("%d blocks carry the bucket of a future period: a server's clock runs ahead", futureBlocks)
	}
	if r.UnknownBlocks > 0 {
		r.finding("%d blocks in %d buckets that are no period of this bucket key: written under another key, or planted", r.UnknownBlocks, r.UnknownBuckets)
	}
}

func (r *auditReport) print(w io.Writer) {
	fmt.Fprintf(w, "blindstored audit: %s store\n", r.Store)
	fmt.Fprintf(w, "  blocks                  %d\n", r.Blocks)
	fmt.Fprintf(w, "  buckets                 %d (%d in the live set, %d of past periods, %d unknown)\n", r.Buckets, r.LiveBuckets, r.ExpiredBuckets, r.UnknownBuckets)
	fmt.Fprintf(w, "  blocks of another size  %d\n", r.OtherSize)
	if s := r.AwaitingSeal; s != nil {
		fmt.Fprintf(w, "  awaiting a seal         %d blocks (%d rows or records)\n", s.Blocks, s.Rows)
	}
	if f := r.FreePages; f != nil {
		fmt.Fprintf(w, "  free pages              %d (%d still hold old bytes)\n", f.Free, f.NonZero)
	}
	if len(r.Settings) > 0 {
		keys := make([]string, 0, len(r.Settings))
		for k := range r.Settings {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + r.Settings[k]
		}
		fmt.Fprintf(w, "  settings                %s\n", strings.Join(parts, " "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.Findings) == 0 {
		fmt.Fprintln(w, "no findings: a copy of this store holds what the design allows, and nothing else")
		return
	}
	fmt.Fprintf(w, "%d findings:\n", len(r.Findings))
	for _, f := range r.Findings {
		fmt.Fprintf(w, "  - %s\n", f)
	}
}

// The embedded store's layout (blobstore/bolt's package doc): four
// top-level buckets and four meta keys.
var (
	boltTop      = []string{"data", "leases", "meta", "unsealed"}
	boltMetaKeys = []string{"block_size", "fingerprint", "highest_period", "schema"}
)

const boltRecordSize = blobstore.HashSize + blobstore.ETagSize

// auditBolt reads the embedded store's file read-only.
func auditBolt(ctx context.Context, path string, bk *bucketer.Bucketer) (*auditReport, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no embedded store at %s (%v): give the --data directory blindstored serve uses", path, err)
	}
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second, PreLoadFreelist: true})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s is in use: stop blindstored serve first (bbolt locks its file), or audit a copy taken while it was stopped", path)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s read-only: %w", path, err)
	}
	defer db.Close()
	rep := &auditReport{Store: "embedded", byBucket: map[bucketer.Bucket]int64{}, Findings: []string{}, Notes: []string{}}
	err = db.View(func(tx *bbolt.Tx) error {
		if err := tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if !slices.Contains(boltTop, string(name)) {
				rep.finding("top-level bucket %q is beyond the design", printable(name))
			}
			return nil
		}); err != nil {
			return err
		}
		meta := tx.Bucket([]byte("meta"))
		if meta == nil {
			return errors.New("the meta bucket is missing: this is not a blindstore file")
		}
		blockSize := 0
		if v := meta.Get([]byte("block_size")); len(v) == 8 {
			blockSize = int(be.BigEndian.Uint64(v))
		} else {
			rep.finding("meta's block_size is damaged")
		}
		fp := bk.Fingerprint()
		if v := meta.Get([]byte("fingerprint")); !bytes.Equal(v, fp[:]) {
			return errors.New("the store was created with another bucket key: give the key file it was created with (--bucket-key-file)")
		}
		_ = meta.ForEach(func(k, v []byte) error {
			if v == nil || !slices.Contains(boltMetaKeys, string(k)) {
				rep.finding("meta key %q is beyond the design", printable(k))
			}
			return nil
		})
		if err := auditBoltLeases(tx, rep); err != nil {
			return err
		}
		if err := auditBoltData(tx, rep, blockSize); err != nil {
			return err
		}
		if u := tx.Bucket([]byte("unsealed")); u != nil {
			st := blobstore.SealStats{}
			err := u.ForEach(func(k, v []byte) error {
				st.Blocks++
				if v == nil || len(k) != 16 || len(v) < 1 || (len(v)-1)%bucketer.BucketSize != 0 {
					rep.finding("an entry of the unsealed bucket is not a block id with its flags and buckets")
				}
				return nil
			})
			if err != nil {
				return err
			}
			st.Rows = st.Blocks
			rep.AwaitingSeal = &st
			if st.Blocks > 0 {
				rep.note("%d blocks changed since the last seal: until the next seal, a copy shows which of them were written together and in which order", st.Blocks)
			}
		}
		return auditFreePagesOf(ctx, tx, path, rep)
	})
	if err != nil {
		return nil, fmt.Errorf("audit %s: %w", path, err)
	}
	rep.classify(bk)
	return rep, nil
}

func auditBoltLeases(tx *bbolt.Tx, rep *auditReport) error {
	leases := tx.Bucket([]byte("leases"))
	if leases == nil {
		rep.finding("the leases bucket is missing")
		return nil
	}
	bad := 0
	err := leases.ForEach(func(k, v []byte) error {
		if v != nil || len(k) != bucketer.BucketSize {
			rep.finding("the leases bucket holds an entry that is not a 16-byte bucket")
			return nil
		}
		var b bucketer.Bucket
		copy(b[:], k)
		return leases.Bucket(k).ForEach(func(id, rec []byte) error {
			if rec == nil || len(id) != 16 || len(rec) != boltRecordSize || blobstore.ID(id).Validate() != nil {
				bad++
				return nil
			}
			rep.byBucket[b]++
			rep.Blocks++
			return nil
		})
	})
	if bad > 0 {
		rep.finding("%d lease entries are not a v4 block id with a %d-byte record", bad, boltRecordSize)
	}
	return err
}

func auditBoltData(tx *bbolt.Tx, rep *auditReport, blockSize int) error {
	data := tx.Bucket([]byte("data"))
	if data == nil {
		rep.finding("the data bucket is missing")
		return nil
	}
	var bad int
	var blocks int64
	err := data.ForEach(func(k, v []byte) error {
		if v != nil || len(k) != bucketer.BucketSize {
			bad++
			return nil
		}
		tb := data.Bucket(k)
		return tb.ForEach(func(id, v []byte) error {
			nb := tb.Bucket(id)
			if v != nil || nb == nil || len(id) != 16 {
				bad++
				return nil
			}
			return nb.ForEach(func(k2, v2 []byte) error {
				switch {
				case v2 == nil || !bytes.Equal(k2, id):
					bad++
				case len(v2) != blockSize:
					rep.OtherSize++
				default:
					blocks++
				}
				return nil
			})
		})
	})
	if bad > 0 {
		rep.finding("%d entries of the data bucket are not a block's ciphertext under its id", bad)
	}
	if rep.OtherSize > 0 {
		rep.finding("%d blocks are not %d bytes long: their size says something of their content", rep.OtherSize, blockSize)
	}
	if blocks+rep.OtherSize != rep.Blocks {
		rep.note("%d blocks have data and %d have a lease record: the file is inconsistent (run blindstored serve to see whether it opens)", blocks+rep.OtherSize, rep.Blocks)
	}
	return err
}

// auditFreePagesOf counts the file's free pages and those not all zeros.
func auditFreePagesOf(ctx context.Context, tx *bbolt.Tx, path string, rep *auditReport) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	pageSize := tx.DB().Info().PageSize
	end := int(tx.Size()) / pageSize
	page := make([]byte, pageSize)
	zero := make([]byte, pageSize)
	fp := &auditFreePages{}
	for id := 2; id < end; id++ {
		if id%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		info, err := tx.Page(id)
		if err != nil {
			return err
		}
		if info == nil || info.Type != "free" {
			continue
		}
		fp.Free++
		if _, err := f.ReadAt(page, int64(id)*int64(pageSize)); err != nil {
			return err
		}
		if !bytes.Equal(page, zero) {
			fp.NonZero++
		}
	}
	rep.FreePages = fp
	if fp.NonZero > 0 {
		rep.note("%d free pages (%d KiB) still hold bytes from before they were freed (in a serving store: old records and ciphertext of deleted, overwritten or purged blocks); the next seal, or blindstored seal on a copy, overwrites them with zeros", fp.NonZero, fp.NonZero*pageSize/1024)
	}
	return nil
}

// auditSpentBolt checks the spent token set beside the embedded store, if
// there is one: one bucket per token key, nonces as keys, empty values.
func auditSpentBolt(path string, rep *auditReport) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		rep.finding("the spent token set %s cannot be read (%v): stop blindstored serve first", path, err)
		return
	}
	defer db.Close()
	_ = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if len(name) != 32 {
				rep.finding("the spent token set holds a bucket that is not a token key id")
			}
			bad := 0
			_ = b.ForEach(func(k, v []byte) error {
				if v == nil || len(v) != 0 || len(k) != 32 {
					bad++
				}
				return nil
			})
			if bad > 0 {
				rep.finding("%d entries of the spent token set are not a bare 32-byte nonce", bad)
			}
			return nil
		})
	})
}

// printable shows a name from the file: as it is when it is plain text,
// else only its length, since a binary name may be a block id.
func printable(b []byte) string {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return fmt.Sprintf("<%d-byte binary name>", len(b))
		}
	}
	return string(b)
}

// The PostgreSQL schema (migrations/): each table and its columns, in
// order. Lease partitions and spent token sets are recognised by name.
var pgTables = map[string]string{
	"blocks":                    "id uuid, proof_hash bytea, etag bytea, data bytea",
	"blocks_hot_a":              "id uuid, proof_hash bytea, etag bytea, data bytea",
	"blocks_hot_b":              "id uuid, proof_hash bytea, etag bytea, data bytea",
	"leases":                    "bucket bytea, id uuid",
	"leases_hot_a":              "id uuid, bucket bytea",
	"leases_hot_b":              "id uuid, bucket bytea",
	"meta":                      "key text, value bytea",
	"blindstore_schema_version": "version integer",
}

var (
	pgPartitionRE = regexp.MustCompile(`^leases_[0-9a-f]{32}$`)
	pgSpentRE     = regexp.MustCompile(`^spent_[0-9a-v]{52}$`)
	pgMetaKeys    = []string{"block_size", "fingerprint", "highest_period", "hot_side", "write_pool"}
	pgFunctions   = []string{"blindstore_expect_rows", "blindstore_expect_side"}
)

// auditPostgres reads the database in one read-only transaction, and the
// store's counts through the store itself.
func auditPostgres(ctx context.Context, url string, bk *bucketer.Bucketer) (*auditReport, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redactURL(url), err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin a read-only transaction: %w", err)
	}
	defer tx.Rollback(context.Background())
	rep := &auditReport{Store: "postgresql", byBucket: map[bucketer.Bucket]int64{}, Settings: map[string]string{}, Findings: []string{}, Notes: []string{}}

	var blockSize int
	var bsRaw []byte
	switch err := tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = 'block_size'").Scan(&bsRaw); {
	case err != nil:
		return nil, fmt.Errorf("read the store's block size (is this a blindstore database? run blindstored migrate or serve on it first): %w", err)
	case len(bsRaw) != 8:
		return nil, fmt.Errorf("meta's block_size is damaged")
	}
	blockSize = int(be.BigEndian.Uint64(bsRaw))

	if err := auditPgSchema(ctx, tx, rep); err != nil {
		return nil, err
	}
	if err := auditPgSettings(ctx, tx, rep); err != nil {
		return nil, err
	}
	for _, t := range []string{"blocks", "blocks_hot_a", "blocks_hot_b"} {
		var n int64
		// octet_length reads the size from the TOAST pointer: no data is
		// fetched.
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+t+" WHERE octet_length(data) <> $1", blockSize).Scan(&n); err != nil {
			return nil, fmt.Errorf("count blocks of another size in %s: %w", t, err)
		}
		rep.OtherSize += n
	}
	if rep.OtherSize > 0 {
		rep.finding("%d blocks are not %d bytes long: their size says something of their content", rep.OtherSize, blockSize)
	}
	// Lease partitions are named after their bucket: one of an unknown
	// bucket says the same as a block in it.
	rows, err := tx.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'leases'::regclass`)
	if err != nil {
		return nil, fmt.Errorf("list lease partitions: %w", err)
	}
	parts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list lease partitions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}

	// The counts through the store, which knows its layers. NoMigrate:
	// the audit changes nothing.
	st, err := postgres.Open(ctx, url, blobstore.Params{BlockSize: blockSize, Fingerprint: bk.Fingerprint()},
		postgres.Options{NoMigrate: true, MaxConns: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if errors.Is(err, postgres.ErrTrackCommitTimestamp) {
		// Already a finding; the store will not open, so its counts stay
		// unread.
		rep.note("the block counts were not read: the store refuses to open while track_commit_timestamp is on")
		return rep, nil
	}
	if errors.Is(err, blobstore.ErrParamsMismatch) {
		return nil, fmt.Errorf("the store was created with another bucket key: give the key file it was created with (--bucket-key-file): %w", err)
	}
	if err != nil {
		return nil, err
	}
	defer st.Close()
	stats, err := st.Stats(ctx)
	if err != nil {
		return nil, err
	}
	rep.Blocks, rep.byBucket = stats.Blocks, stats.Buckets
	if ss, ok := blobstore.Store(st).(interface {
		SealStats(context.Context) (blobstore.SealStats, error)
	}); ok {
		s, err := ss.SealStats(ctx)
		if err != nil {
			return nil, err
		}
		rep.AwaitingSeal = &s
		if s.Blocks > 0 {
			rep.note("%d blocks changed since the last seal (%d rows on the hot sides): until the next seal, their rows keep the transactions that wrote them, so a copy shows which were written together and in which order", s.Blocks, s.Rows)
		}
	}
	rep.classify(bk)
	live := bk.Live()
	var unknownParts int
	for _, p := range parts {
		var b bucketer.Bucket
		if _, err := hex.Decode(b[:], []byte(strings.TrimPrefix(p, "leases_"))); err != nil {
			continue
		}
		if _, holds := rep.byBucket[b]; !holds && !live.Contains(b) {
			unknownParts++
		}
	}
	if unknownParts > 0 {
		rep.note("%d empty lease partitions of buckets outside the live set remain (their names are keyed buckets; the next purge drops them)", unknownParts)
	}
	return rep, nil
}

// auditPgSchema compares every relation, column, meta key, trigger and
// publication of the database with the design.
func auditPgSchema(ctx context.Context, tx pgx.Tx, rep *auditReport) error {
	type rel struct{ schema, name, kind string }
	rows, err := tx.Query(ctx, `SELECT n.nspname, c.relname, c.relkind::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r','p','v','m','S','f')
		  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
		ORDER BY 1, 2`)
	if err != nil {
		return fmt.Errorf("list relations: %w", err)
	}
	rels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (rel, error) {
		var x rel
		return x, r.Scan(&x.schema, &x.name, &x.kind)
	})
	if err != nil {
		return fmt.Errorf("list relations: %w", err)
	}
	var schema string
	if err := tx.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return err
	}
	kinds := map[string]string{"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view", "S": "sequence", "f": "foreign table"}
	for _, r := range rels {
		want, known := pgTables[r.name]
		switch {
		case r.schema != schema:
			rep.finding("%s %s.%s is beyond the design (another schema in the store's database)", kinds[r.kind], r.schema, r.name)
			continue
		case known:
		case pgPartitionRE.MatchString(r.name) && r.kind == "r":
			want = pgTables["leases"]
		case pgSpentRE.MatchString(r.name) && r.kind == "r":
			want = "nonce bytea"
		default:
			what := fmt.Sprintf("%s %s is beyond the design", kinds[r.kind], r.name)
			if r.kind == "S" {
				what += ": a sequence numbers what it is used for, in order"
			}
			rep.finding("%s", what)
			continue
		}
		got, err := pgColumns(ctx, tx, r.schema, r.name)
		if err != nil {
			return err
		}
		if got != want {
			wantCols := strings.Split(want, ", ")
			for _, c := range strings.Split(got, ", ") {
				if c != "" && !slices.Contains(wantCols, c) {
					rep.finding("column %s.%s is beyond the design (the table should hold %s)", r.name, strings.SplitN(c, " ", 2)[0], want)
				}
			}
			for _, c := range wantCols {
				if !slices.Contains(strings.Split(got, ", "), c) {
					rep.finding("table %s lacks column %s: it is not the schema this blindstored knows", r.name, c)
				}
			}
		}
	}

	rows, err = tx.Query(ctx, "SELECT key FROM meta ORDER BY key")
	if err != nil {
		return fmt.Errorf("read meta keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("read meta keys: %w", err)
	}
	for _, k := range keys {
		if !slices.Contains(pgMetaKeys, k) {
			rep.finding("meta key %q is beyond the design", k)
		}
	}

	for _, q := range []struct{ sql, what string }{
		{`SELECT t.tgname || ' on ' || c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE NOT t.tgisinternal`,
			"trigger %s is beyond the design: a trigger can copy, date or log every write"},
		{`SELECT evtname FROM pg_event_trigger`, "event trigger %s is beyond the design"},
		{`SELECT pubname FROM pg_publication`, "publication %s streams every change of the published tables, in commit order, to whoever subscribes"},
		{`SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema()
			AND p.proname <> ALL($1)`, "function %s is beyond the design"},
	} {
		var args []any
		if strings.Contains(q.sql, "$1") {
			args = append(args, pgFunctions)
		}
		rows, err := tx.Query(ctx, q.sql, args...)
		if err != nil {
			return fmt.Errorf("audit schema: %w", err)
		}
		names, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("audit schema: %w", err)
		}
		for _, n := range names {
			rep.finding(q.what, n)
		}
	}
	return nil
}

// pgColumns lists a table's columns as "name type, …" in order.
func pgColumns(ctx context.Context, tx pgx.Tx, schema, table string) (string, error) {
	rows, err := tx.Query(ctx, `SELECT a.attname || ' ' || format_type(a.atttypid, NULL) FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, schema, table)
	if err != nil {
		return "", fmt.Errorf("list columns of %s: %w", table, err)
	}
	cols, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("list columns of %s: %w", table, err)
	}
	return strings.Join(cols, ", "), nil
}

// auditPgSettings reads the settings that keep write order, statements
// or their parameters outside the tables, and what replicates the WAL.
func auditPgSettings(ctx context.Context, tx pgx.Tx, rep *auditReport) error {
	names := []string{"track_commit_timestamp", "archive_mode", "wal_keep_size", "wal_level", "log_statement",
		"log_min_duration_statement", "log_min_duration_sample", "log_statement_sample_rate", "log_transaction_sample_rate",
		"log_duration", "log_connections", "log_disconnections", "log_parameter_max_length_on_error", "log_lock_waits",
		"shared_preload_libraries", "summarize_wal"}
	rows, err := tx.Query(ctx, "SELECT name, setting FROM pg_settings WHERE name = ANY($1)", names)
	if err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	set := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			rows.Close()
			return err
		}
		set[n] = v
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read settings: %w", err)
	}
	rep.Settings = set
	num := func(n string) float64 {
		f, _ := strconv.ParseFloat(set[n], 64)
		return f
	}
	on := func(n string) bool { v := set[n]; return v != "" && v != "off" && v != "none" }
	if on("track_commit_timestamp") {
		rep.finding("track_commit_timestamp is on: every row's commit time is kept, which dates every block (blindstored serve refuses to start)")
	}
	if on("archive_mode") {
		rep.finding("archive_mode is %s: the WAL archive keeps every write in commit order, which replays what sealing erases", set["archive_mode"])
	}
	if num("wal_keep_size") > 0 {
		rep.finding("wal_keep_size is %s MB: old WAL kept on disk replays the order of writes since", set["wal_keep_size"])
	}
	switch set["log_statement"] {
	case "mod", "all":
		rep.finding("log_statement is %s: the server log records every write with its parameters (block ids, proof hashes)", set["log_statement"])
	case "ddl":
		rep.note("log_statement is ddl: the log records lease partitions as they are created, one per period")
	}
	if num("log_min_duration_statement") >= 0 {
		rep.finding("log_min_duration_statement is %s ms: statements slower than that are logged with their parameters and times", set["log_min_duration_statement"])
	}
	if num("log_min_duration_sample") >= 0 && num("log_statement_sample_rate") > 0 {
		rep.finding("log_min_duration_sample is %s ms: a sample of statements is logged with parameters and times", set["log_min_duration_sample"])
	}
	if num("log_transaction_sample_rate") > 0 {
		rep.finding("log_transaction_sample_rate is %s: a sample of transactions is logged statement by statement", set["log_transaction_sample_rate"])
	}
	if on("log_duration") {
		rep.finding("log_duration is on: the log times every statement, which dates every write")
	}
	if on("log_connections") {
		rep.finding("log_connections is %s: the log records when each blindstored connection came and from where", set["log_connections"])
	}
	if on("log_disconnections") {
		rep.finding("log_disconnections is on: the log records each session's end and length")
	}
	if num("log_parameter_max_length_on_error") != 0 {
		rep.finding("log_parameter_max_length_on_error is %s: failing statements are logged with their parameters (block ids)", set["log_parameter_max_length_on_error"])
	}
	if on("log_lock_waits") {
		rep.note("log_lock_waits is on: lock waits are logged with the statement (without parameters) and a time")
	}
	if set["wal_level"] == "logical" {
		rep.note("wal_level is logical: a logical decoding slot would stream every change in commit order")
	}
	if on("summarize_wal") {
		rep.finding("summarize_wal is on: WAL summaries record which blocks of the tables each range of WAL touched")
	}
	for _, lib := range strings.Split(set["shared_preload_libraries"], ",") {
		switch strings.TrimSpace(lib) {
		case "pg_stat_statements":
			rep.note("pg_stat_statements is loaded: it keeps the store's statements (without parameters) and counts")
		case "auto_explain":
			rep.finding("auto_explain is loaded: it logs the plans of slow statements, with their parameters if so configured")
		}
	}

	var slots []string
	rows, err = tx.Query(ctx, "SELECT slot_name || ' (' || slot_type || ')' FROM pg_replication_slots ORDER BY 1")
	if err != nil {
		return fmt.Errorf("read replication slots: %w", err)
	}
	if slots, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		return fmt.Errorf("read replication slots: %w", err)
	}
	for _, s := range slots {
		rep.finding("replication slot %s keeps the WAL its consumer has not read: old WAL replays the order of writes", s)
	}
	var archived int64
	if err := tx.QueryRow(ctx, "SELECT archived_count FROM pg_stat_archiver").Scan(&archived); err == nil && archived > 0 {
		rep.finding("%d WAL segments have been archived: wherever they went, they replay the order of writes", archived)
	}
	var replicas int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication").Scan(&replicas); err == nil && replicas > 0 {
		rep.note("%d standbys receive the WAL: each is a copy of the store with its own WAL and settings; audit them too", replicas)
	}
	return nil
}
