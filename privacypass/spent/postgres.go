package spent

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"

	"github.com/blindstore/blindstore/privacypass"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is a SpentSet in PostgreSQL: one table per token key, named
// spent_<key id in lower-case base32hex>, with a single column, the
// nonce. A retired key's table is dropped, which leaves no dead rows
// behind (deleting rows would leave them, with the transaction ids that
// wrote them, until a vacuum). The tables are created when a key's first
// token is spent, not by a migration: the block store's schema stays as
// docs/design.md §3 lists it, and a deployment without an issuer has none.
type Postgres struct {
	pool *pgxpool.Pool
}

// OpenPostgres connects to the database at url.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("spent: postgres URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("spent: connect: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("spent: connect: %w", err)
	}
	return &Postgres{pool: pool}, nil
}

const tablePrefix = "spent_"

// b32 names tables: lower case, so that PostgreSQL's folding of unquoted
// names changes nothing, and short enough for its 63-byte names.
var b32 = base32.HexEncoding.WithPadding(base32.NoPadding)

func tableName(key privacypass.KeyID) string {
	return tablePrefix + strings.ToLower(b32.EncodeToString(key[:]))
}

func keyOf(table string) (privacypass.KeyID, bool) {
	var id privacypass.KeyID
	raw, err := b32.DecodeString(strings.ToUpper(strings.TrimPrefix(table, tablePrefix)))
	if err != nil || len(raw) != len(id) || !strings.HasPrefix(table, tablePrefix) {
		return id, false
	}
	copy(id[:], raw)
	return id, true
}

// Spend records nonce under key, creating key's table on its first use.
func (p *Postgres) Spend(ctx context.Context, key privacypass.KeyID, nonce [privacypass.NonceSize]byte) (bool, error) {
	insert := "INSERT INTO " + tableName(key) + " (nonce) VALUES ($1) ON CONFLICT DO NOTHING"
	for attempt := 0; ; attempt++ {
		tag, err := p.pool.Exec(ctx, insert, nonce[:])
		if err == nil {
			return tag.RowsAffected() == 1, nil
		}
		var pe *pgconn.PgError
		if attempt > 0 || !errors.As(err, &pe) || pe.Code != "42P01" { // undefined_table
			return false, fmt.Errorf("spent: record: %w", err)
		}
		if err := p.create(ctx, key); err != nil {
			return false, err
		}
	}
}

func (p *Postgres) create(ctx context.Context, key privacypass.KeyID) error {
	_, err := p.pool.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+tableName(key)+
		" (nonce bytea PRIMARY KEY CHECK (octet_length(nonce) = 32))")
	var pe *pgconn.PgError
	// Two servers creating the same table at once: one of them sees the
	// other's catalog row and fails, and the table is there either way.
	if errors.As(err, &pe) && (pe.Code == "23505" || pe.Code == "42P07") {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("spent: create a key's table: %w", err)
	}
	return nil
}

// Keys lists the keys that have a table in the current schema.
func (p *Postgres) Keys(ctx context.Context) ([]privacypass.KeyID, error) {
	rows, err := p.pool.Query(ctx, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname LIKE 'spent\_%'`)
	if err != nil {
		return nil, fmt.Errorf("spent: list tables: %w", err)
	}
	defer rows.Close()
	var out []privacypass.KeyID
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("spent: list tables: %w", err)
		}
		if id, ok := keyOf(name); ok {
			out = append(out, id)
		}
	}
	return out, rows.Err()
}

// Drop drops key's table.
func (p *Postgres) Drop(ctx context.Context, key privacypass.KeyID) error {
	if _, err := p.pool.Exec(ctx, "DROP TABLE IF EXISTS "+tableName(key)); err != nil {
		return fmt.Errorf("spent: drop a key's table: %w", err)
	}
	return nil
}

// Close closes the pool.
func (p *Postgres) Close() error {
	p.pool.Close()
	return nil
}

var _ privacypass.SpentSet = (*Postgres)(nil)
