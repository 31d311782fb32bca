package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/audit"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/jackc/pgx/v5"
)

// designTables is the schema of migrations/: each table and its columns,
// in order. Lease partitions and spent token sets are recognised by name.
var designTables = map[string]string{
	"blocks":       "id uuid, proof_hash bytea, etag bytea, data bytea",
	"blocks_hot_a": "id uuid, proof_hash bytea, etag bytea, data bytea",
	"blocks_hot_b": "id uuid, proof_hash bytea, etag bytea, data bytea",
	"leases":       "bucket bytea, id uuid",
	"leases_hot_a": "id uuid, bucket bytea",
	"leases_hot_b": "id uuid, bucket bytea",
	"meta":         "key text, value bytea",
	versionTable:   "version integer",
}

var (
	partitionRE = regexp.MustCompile(`^` + partitionPrefix + `[0-9a-f]{32}$`)
	// spentRE names the tables of privacypass/spent's spent token sets,
	// which share the store's database: one per token key, a nonce each.
	spentRE         = regexp.MustCompile(`^spent_[0-9a-v]{52}$`)
	spentColumns    = "nonce bytea"
	designMetaKeys  = []string{metaBlockSize, metaFingerprint, metaHighestPeriod, metaHotSide, metaWritePool, metaUnmerged, metaMerged}
	designFunctions = []string{"blindstore_expect_rows", "blindstore_expect_side"}
)

// Audit reports what a copy of the database at url would reveal: every
// relation, column, meta key, trigger, function and publication beyond
// the design, blocks of another size, the settings and replication that
// keep write order or statements outside the tables, and, through the
// store itself (which knows its layers), the buckets against bk's live
// set and what awaits a seal. It reads the database in one read-only
// transaction and changes nothing.
func Audit(ctx context.Context, url string, bk *bucketer.Bucketer) (*audit.Report, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		// pgx's error names the host, database and user, never the
		// password: the URL itself is not repeated here.
		return nil, fmt.Errorf("connect to the store's database: %w", err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("begin a read-only transaction: %w", err)
	}
	defer tx.Rollback(context.Background())
	rep := audit.New("postgresql")
	rep.Settings = map[string]string{}

	var bsRaw []byte
	switch err := tx.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaBlockSize).Scan(&bsRaw); {
	case err != nil:
		return nil, fmt.Errorf("read the store's block size (is this a blindstore database? run blindstored migrate or serve on it first): %w", err)
	case len(bsRaw) != 8:
		return nil, fmt.Errorf("meta's block_size is damaged")
	}
	blockSize := int(binary.BigEndian.Uint64(bsRaw))

	if err := auditSchema(ctx, tx, rep); err != nil {
		return nil, err
	}
	if err := auditSettings(ctx, tx, rep); err != nil {
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
		rep.Finding("%d blocks are not %d bytes long: their size says something of their content", rep.OtherSize, blockSize)
	}
	// Lease partitions are named after their bucket: one of an unknown
	// bucket says the same as a block in it.
	parts, err := queryStrings(ctx, tx, "list lease partitions",
		`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'leases'::regclass`)
	if err != nil {
		return nil, err
	}
	merges, err := mergeState(ctx, tx)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}

	// The counts through the store, which knows its layers. NoMigrate:
	// the audit changes nothing.
	st, err := Open(ctx, url, blobstore.Params{BlockSize: blockSize, Fingerprint: bk.Fingerprint()},
		Options{NoMigrate: true, MaxConns: 2, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if errors.Is(err, ErrTrackCommitTimestamp) {
		// Already a finding; the store will not open, so its counts stay
		// unread.
		rep.Note("the block counts were not read: the store refuses to open while track_commit_timestamp is on")
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
	rep.Blocks, rep.ByBucket = stats.Blocks, stats.Buckets
	ss, err := st.SealStats(ctx)
	if err != nil {
		return nil, err
	}
	rep.AwaitingSeal = &ss
	if ss.Blocks > 0 {
		rep.Note("%d blocks changed since the last seal (%d rows on the hot sides): until the next seal, their rows keep the transactions that wrote them, so a copy shows which were written together and in which order", ss.Blocks, ss.Rows)
	}
	rep.Classify(bk)
	rep.Merges(bk, &merges)
	live := bk.Live()
	var unknownParts int
	for _, p := range parts {
		b, ok := partitionBucket(p)
		if !ok {
			continue
		}
		if _, holds := rep.ByBucket[b]; !holds && !live.Contains(b) {
			unknownParts++
		}
	}
	if unknownParts > 0 {
		rep.Note("%d empty lease partitions of buckets outside the live set remain (their names are keyed buckets; the next purge drops them)", unknownParts)
	}
	return rep, nil
}

// auditSchema compares every relation, column, meta key, trigger and
// publication of the database with the design.
func auditSchema(ctx context.Context, tx pgx.Tx, rep *audit.Report) error {
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
		want, known := designTables[r.name]
		switch {
		case r.schema != schema:
			rep.Finding("%s %s.%s is beyond the design (another schema in the store's database)", kinds[r.kind], r.schema, r.name)
			continue
		case known:
		case partitionRE.MatchString(r.name) && r.kind == "r":
			want = designTables["leases"]
		case spentRE.MatchString(r.name) && r.kind == "r":
			want = spentColumns
		default:
			what := fmt.Sprintf("%s %s is beyond the design", kinds[r.kind], r.name)
			if r.kind == "S" {
				what += ": a sequence numbers what it is used for, in order"
			}
			rep.Finding("%s", what)
			continue
		}
		got, err := columnsOf(ctx, tx, r.schema, r.name)
		if err != nil {
			return err
		}
		if got != want {
			wantCols := strings.Split(want, ", ")
			for _, c := range strings.Split(got, ", ") {
				if c != "" && !slices.Contains(wantCols, c) {
					rep.Finding("column %s.%s is beyond the design (the table should hold %s)", r.name, strings.SplitN(c, " ", 2)[0], want)
				}
			}
			for _, c := range wantCols {
				if !slices.Contains(strings.Split(got, ", "), c) {
					rep.Finding("table %s lacks column %s: it is not the schema this blindstored knows", r.name, c)
				}
			}
		}
	}

	keys, err := queryStrings(ctx, tx, "read meta keys", "SELECT key FROM meta ORDER BY key")
	if err != nil {
		return err
	}
	for _, k := range keys {
		if !slices.Contains(designMetaKeys, k) {
			rep.Finding("meta key %q is beyond the design", k)
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
			args = append(args, designFunctions)
		}
		names, err := queryStrings(ctx, tx, "audit schema", q.sql, args...)
		if err != nil {
			return err
		}
		for _, n := range names {
			rep.Finding(q.what, n)
		}
	}
	return nil
}

// columnsOf lists a table's columns as "name type, …" in order.
func columnsOf(ctx context.Context, tx pgx.Tx, schema, table string) (string, error) {
	cols, err := queryStrings(ctx, tx, "list columns of "+table, `SELECT a.attname || ' ' || format_type(a.atttypid, NULL) FROM pg_attribute a
		JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relname = $2 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, schema, table)
	return strings.Join(cols, ", "), err
}

// queryStrings runs a query of one text column and returns its values;
// what says what it was for in the error.
func queryStrings(ctx context.Context, tx pgx.Tx, what, sql string, args ...any) ([]string, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// auditSettings reads the settings that keep write order, statements
// or their parameters outside the tables, and what replicates the WAL.
func auditSettings(ctx context.Context, tx pgx.Tx, rep *audit.Report) error {
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
		rep.Finding("track_commit_timestamp is on: every row's commit time is kept, which dates every block (blindstored serve refuses to start)")
	}
	if on("archive_mode") {
		rep.Finding("archive_mode is %s: the WAL archive keeps every write in commit order, which replays what sealing erases", set["archive_mode"])
	}
	if num("wal_keep_size") > 0 {
		rep.Finding("wal_keep_size is %s MB: old WAL kept on disk replays the order of writes since", set["wal_keep_size"])
	}
	switch set["log_statement"] {
	case "mod", "all":
		rep.Finding("log_statement is %s: the server log records every write with its parameters (block ids, proof hashes)", set["log_statement"])
	case "ddl":
		rep.Note("log_statement is ddl: the log records lease partitions as they are created, one per period")
	}
	if num("log_min_duration_statement") >= 0 {
		rep.Finding("log_min_duration_statement is %s ms: statements slower than that are logged with their parameters and times", set["log_min_duration_statement"])
	}
	if num("log_min_duration_sample") >= 0 && num("log_statement_sample_rate") > 0 {
		rep.Finding("log_min_duration_sample is %s ms: a sample of statements is logged with parameters and times", set["log_min_duration_sample"])
	}
	if num("log_transaction_sample_rate") > 0 {
		rep.Finding("log_transaction_sample_rate is %s: a sample of transactions is logged statement by statement", set["log_transaction_sample_rate"])
	}
	if on("log_duration") {
		rep.Finding("log_duration is on: the log times every statement, which dates every write")
	}
	if on("log_connections") {
		rep.Finding("log_connections is %s: the log records when each blindstored connection came and from where", set["log_connections"])
	}
	if on("log_disconnections") {
		rep.Finding("log_disconnections is on: the log records each session's end and length")
	}
	if num("log_parameter_max_length_on_error") != 0 {
		rep.Finding("log_parameter_max_length_on_error is %s: failing statements are logged with their parameters (block ids)", set["log_parameter_max_length_on_error"])
	}
	if on("log_lock_waits") {
		rep.Note("log_lock_waits is on: lock waits are logged with the statement (without parameters) and a time")
	}
	if set["wal_level"] == "logical" {
		rep.Note("wal_level is logical: a logical decoding slot would stream every change in commit order")
	}
	if on("summarize_wal") {
		rep.Finding("summarize_wal is on: WAL summaries record which blocks of the tables each range of WAL touched")
	}
	for _, lib := range strings.Split(set["shared_preload_libraries"], ",") {
		switch strings.TrimSpace(lib) {
		case "pg_stat_statements":
			rep.Note("pg_stat_statements is loaded: it keeps the store's statements (without parameters) and counts")
		case "auto_explain":
			rep.Finding("auto_explain is loaded: it logs the plans of slow statements, with their parameters if so configured")
		}
	}

	slots, err := queryStrings(ctx, tx, "read replication slots", "SELECT slot_name || ' (' || slot_type || ')' FROM pg_replication_slots ORDER BY 1")
	if err != nil {
		return err
	}
	for _, s := range slots {
		rep.Finding("replication slot %s keeps the WAL its consumer has not read: old WAL replays the order of writes", s)
	}
	var archived int64
	if err := tx.QueryRow(ctx, "SELECT archived_count FROM pg_stat_archiver").Scan(&archived); err == nil && archived > 0 {
		rep.Finding("%d WAL segments have been archived: wherever they went, they replay the order of writes", archived)
	}
	var replicas int64
	if err := tx.QueryRow(ctx, "SELECT count(*) FROM pg_stat_replication").Scan(&replicas); err == nil && replicas > 0 {
		rep.Note("%d standbys receive the WAL: each is a copy of the store with its own WAL and settings; audit them too", replicas)
	}
	return nil
}
