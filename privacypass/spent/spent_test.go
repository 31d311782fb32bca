package spent

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/privacypass"
	"github.com/jackc/pgx/v5"
)

// run is the contract every SpentSet keeps.
func run(t *testing.T, s privacypass.SpentSet) {
	ctx := context.Background()
	var k1, k2 privacypass.KeyID
	rand.Read(k1[:])
	rand.Read(k2[:])
	var n1, n2 [privacypass.NonceSize]byte
	rand.Read(n1[:])
	rand.Read(n2[:])

	if ids, err := s.Keys(ctx); err != nil || len(ids) != 0 {
		t.Fatalf("new set: keys %v, %v", ids, err)
	}
	for _, c := range []struct {
		k     privacypass.KeyID
		n     [32]byte
		fresh bool
	}{{k1, n1, true}, {k1, n1, false}, {k1, n2, true}, {k2, n1, true}, {k2, n1, false}} {
		fresh, err := s.Spend(ctx, c.k, c.n)
		if err != nil || fresh != c.fresh {
			t.Fatalf("Spend = %v, %v; want %v", fresh, err, c.fresh)
		}
	}
	ids, err := s.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(ids, func(a, b privacypass.KeyID) int { return slices.Compare(a[:], b[:]) })
	want := []privacypass.KeyID{k1, k2}
	slices.SortFunc(want, func(a, b privacypass.KeyID) int { return slices.Compare(a[:], b[:]) })
	if !slices.Equal(ids, want) {
		t.Fatalf("keys %v, want %v", ids, want)
	}
	if err := s.Drop(ctx, k1); err != nil {
		t.Fatal(err)
	}
	if err := s.Drop(ctx, k1); err != nil {
		t.Fatalf("dropping twice: %v", err)
	}
	if ids, _ := s.Keys(ctx); len(ids) != 1 || ids[0] != k2 {
		t.Fatalf("after drop: keys %v", ids)
	}
	// A dropped set is gone: its nonce is new again (which is why a key
	// is dropped only once it is accepted no more).
	if fresh, err := s.Spend(ctx, k1, n1); err != nil || !fresh {
		t.Fatalf("spend after drop = %v, %v", fresh, err)
	}
	if fresh, _ := s.Spend(ctx, k2, n1); fresh {
		t.Fatal("dropping one key's set forgot another's")
	}

	// Concurrent spends of one nonce: exactly one is fresh.
	var n3 [32]byte
	rand.Read(n3[:])
	var ok atomic.Int32
	var wg sync.WaitGroup
	for range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fresh, err := s.Spend(ctx, k2, n3)
			if err != nil {
				t.Error(err)
			}
			if fresh {
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("%d of 12 concurrent spends of one nonce were fresh", ok.Load())
	}
}

func TestBolt(t *testing.T) {
	s, err := OpenBolt(filepath.Join(t.TempDir(), "spent.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run(t, s)
}

func TestPostgres(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	s, err := OpenPostgres(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	run(t, s)

	// Each table has one column, a 32-byte nonce, and nothing else.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT table_name, column_name, data_type, coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	tables := 0
	for rows.Next() {
		var table, col, typ, def string
		if err := rows.Scan(&table, &col, &typ, &def); err != nil {
			t.Fatal(err)
		}
		tables++
		if _, ok := keyOf(table); !ok || col != "nonce" || typ != "bytea" || def != "" {
			t.Errorf("column %s.%s %s default %q: a spent set holds only nonce bytea", table, col, typ, def)
		}
	}
	if tables != 2 {
		t.Fatalf("%d spent columns, want one for each of the 2 keys", tables)
	}
}
