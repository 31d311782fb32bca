package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestURLGivesFreshDatabasesAndDropsThem checks the helper's contract: a
// database of one's own, empty, distinct per call, gone after the test.
func TestURLGivesFreshDatabasesAndDropsThem(t *testing.T) {
	var names []string
	t.Run("use", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 2; i++ {
			conn, err := pgx.Connect(context.Background(), URL(t))
			if err != nil {
				t.Fatalf("connect to the fresh database: %v", err)
			}
			var name string
			var tables int
			err = conn.QueryRow(context.Background(), `SELECT current_database(),
				(SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace)`).Scan(&name, &tables)
			conn.Close(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if tables != 0 {
				t.Errorf("database %s is not empty: %d relations", name, tables)
			}
			if seen[name] {
				t.Errorf("URL gave database %s twice", name)
			}
			seen[name] = true
			names = append(names, name)
		}
	})
	if len(names) == 0 {
		// The subtest skipped (no server here) or failed; nothing to check.
		return
	}
	conn, err := pgx.Connect(context.Background(), ServerURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, n := range names {
		var exists bool
		if err := conn.QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", n).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s outlived its test", n)
		}
	}
}

func TestWithDatabase(t *testing.T) {
	for _, c := range []struct{ base, want string }{
		{"postgres://u:p@h:5/postgres?sslmode=disable", "postgres://u:p@h:5/x?sslmode=disable"},
		{"postgresql://h/", "postgresql://h/x"},
		{"host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=x"},
	} {
		got, err := withDatabase(c.base, "x")
		if err != nil || got != c.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", c.base, got, err, c.want)
		}
	}
	if got := redact("postgres://u:secret@h/db"); got != "postgres://u:xxxxx@h/db" {
		t.Errorf("redact kept the password: %s", got)
	}
}
