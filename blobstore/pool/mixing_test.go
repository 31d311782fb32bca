package pool

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5"
)

// Mixing, measured on PostgreSQL as an attacker with a copy of the
// database would: 64 writers put blocks through the Service and the pool,
// each one request at a time, for 8 rounds. The block rows (of the hot
// tables, or of blocks before the store seals) are grouped by the transaction that wrote them (xmin) and ordered by
// their physical place (ctid). The test asserts:
//
//   - every commit holds rows of at least 48 of the 64 writers (with a
//     100 ms window and writers that resubmit at once, each commit should
//     hold all of them);
//   - within each commit, the rank correlation between arrival (a global
//     counter taken as each writer calls Put) and physical order is what
//     chance gives: the pooled Spearman rho's z score (see pooledRho) is
//     below 4.5 in absolute value, that is |rho| < 4.5/√Σ(n−1), about
//     0.2 for 8 commits of 64 rows.
//
// The store itself writes a batch's rows in id order, which is random;
// the pool's permutation is tested on its own in shuffle_test.go.
// Commits, one after the other, are of course in arrival order: that a
// row was "written in the same commit batch" is what remains visible until
// the rows are sealed (docs/design.md §5).
func TestMixingOnPostgres(t *testing.T) {
	const (
		writers  = 64
		rounds   = 8
		minShare = 48
		window   = 100 * time.Millisecond
	)
	url := pgtest.URL(t)
	bk := testBucketer(t)
	st := openPostgresAt(t, url, bk)
	p := New(st, Options{Window: window, Logger: quietLogger()})
	defer p.Close()
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: st, Bucketer: bk, BlockSize: testBlockSize, Committer: p})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	type put struct {
		writer  int
		arrival int64
	}
	var (
		seq    atomic.Int64
		mu     sync.Mutex
		byID   = map[wire.ID]put{}
		wg     sync.WaitGroup
		failed atomic.Bool
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				o := newOwned(t)
				a := seq.Add(1)
				if _, err := svc.Put(ctx, blobstore.PutItem{ID: o.id, Proof: o.w, Data: o.data}); err != nil {
					t.Errorf("writer %d: %v", w, err)
					failed.Store(true)
					return
				}
				mu.Lock()
				byID[o.id] = put{writer: w, arrival: a}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if failed.Load() {
		t.FailNow()
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// New rows go to the hot tables once the store seals (docs/design.md §5),
	// to blocks before: read every table that holds block rows.
	var tables []string
	if err := conn.QueryRow(ctx, `SELECT array_agg(relname::text ORDER BY relname) FROM pg_class
		WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace AND (relname = 'blocks' OR relname LIKE 'blocks\_hot\_%')`).Scan(&tables); err != nil {
		t.Fatal(err)
	}
	var q []string
	for i, tb := range tables {
		q = append(q, fmt.Sprintf("SELECT id, xmin::text, %d, (ctid::text::point)[0], (ctid::text::point)[1] FROM %s", i, pgx.Identifier{tb}.Sanitize()))
	}
	rows, err := conn.Query(ctx, strings.Join(q, " UNION ALL "))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		arrival, place float64
		writer         int
	}
	commits := map[string][]row{}
	for rows.Next() {
		var id [16]byte
		var xmin string
		var table int
		var page, item float64
		if err := rows.Scan(&id, &xmin, &table, &page, &item); err != nil {
			t.Fatal(err)
		}
		pt, ok := byID[wire.ID(id)]
		if !ok {
			t.Fatalf("a row the writers did not write")
		}
		commits[xmin] = append(commits[xmin], row{arrival: float64(pt.arrival), place: float64(table)*1e12 + page*1e6 + item, writer: pt.writer})
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if total := writers * rounds; len(byID) != total {
		t.Fatalf("%d blocks acknowledged, want %d", len(byID), total)
	}

	var groups [][2][]float64
	sizes, shares := []int{}, []int{}
	for _, rs := range commits {
		ws := map[int]bool{}
		g := [2][]float64{}
		for _, r := range rs {
			ws[r.writer] = true
			g[0] = append(g[0], r.arrival)
			g[1] = append(g[1], r.place)
		}
		sizes = append(sizes, len(rs))
		shares = append(shares, len(ws))
		groups = append(groups, g)
	}
	slices.Sort(shares)
	t.Logf("%d commits; rows per commit %v; distinct writers per commit (sorted) %v", len(commits), sizes, shares)
	if shares[0] < minShare {
		t.Errorf("a commit holds rows of only %d writers, want at least %d of %d", shares[0], minShare, writers)
	}
	rho, z, df := pooledRho(groups)
	limit := zLimit / math.Sqrt(float64(df))
	t.Logf("within-commit Spearman rho(arrival, ctid) = %.4f, z = %.2f over Σ(n-1) = %d; limits |z| < %.1f, |rho| < %.3f", rho, z, df, zLimit, limit)
	if math.Abs(z) >= zLimit {
		t.Errorf("physical order follows arrival: rho = %.4f, z = %.2f", rho, z)
	}
}
