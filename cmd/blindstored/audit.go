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
// Each store reads its own layout (bolt.Audit: the bbolt file opened
// read-only, so the server must be stopped, as for purge; postgres.Audit:
// a read-only transaction plus the store's own Stats and SealStats) into
// one report, blobstore/audit's. It never prints a block id, proof, ETag
// or bucket value.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/blobstore/audit"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/blobstore/postgres"
	"github.com/blindstore/blindstore/bucketer"
	"go.etcd.io/bbolt"
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

// auditReport is the store's report (blobstore/audit) as this command
// prints it; the store packages read their own layouts into it.
type auditReport struct{ *audit.Report }

func (r *auditReport) print(w io.Writer) { r.Print(w) }

// auditBolt audits the embedded store's file, read-only.
func auditBolt(ctx context.Context, path string, bk *bucketer.Bucketer) (*auditReport, error) {
	rep, err := bolt.Audit(ctx, path, bk)
	if err != nil {
		return nil, err
	}
	return &auditReport{rep}, nil
}

// auditPostgres audits the store's database in a read-only transaction.
func auditPostgres(ctx context.Context, url string, bk *bucketer.Bucketer) (*auditReport, error) {
	rep, err := postgres.Audit(ctx, url, bk)
	if err != nil {
		return nil, err
	}
	return &auditReport{rep}, nil
}

// auditSpentBolt checks the spent token set beside the embedded store, if
// there is one: one bucket per token key, nonces as keys, empty values.
func auditSpentBolt(path string, rep *auditReport) {
	if _, err := os.Stat(path); err != nil {
		return
	}
	db, err := bbolt.Open(path, 0, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		rep.Finding("the spent token set %s cannot be read (%v): stop blindstored serve first", path, err)
		return
	}
	defer db.Close()
	_ = db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if len(name) != 32 {
				rep.Finding("the spent token set holds a bucket that is not a token key id")
			}
			bad := 0
			_ = b.ForEach(func(k, v []byte) error {
				if v == nil || len(v) != 0 || len(k) != 32 {
					bad++
				}
				return nil
			})
			if bad > 0 {
				rep.Finding("%d entries of the spent token set are not a bare 32-byte nonce", bad)
			}
			return nil
		})
	})
}
