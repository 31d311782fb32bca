package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/blindstore/blindstore/migrations"
	"github.com/jackc/pgx/v5"
	tern "github.com/jackc/tern/v2/migrate"
)

// versionTable is tern's one-row table holding the schema version.
const versionTable = "blindstore_schema_version"

// knownVersion is the schema version this binary is built for: the number
// of embedded migrations.
var knownVersion = func() int {
	paths, err := tern.FindMigrations(migrations.FS)
	if err != nil {
		panic(fmt.Sprintf("postgres: embedded migrations: %v", err))
	}
	return len(paths)
}()

// KnownVersion is the schema version this binary applies and expects.
func KnownVersion() int { return knownVersion }

func errSchemaTooNew(v int32) error {
	return fmt.Errorf("postgres: the database schema is at version %d, newer than the %d this blindstored knows: upgrade blindstored to the release that migrated it", v, knownVersion)
}

// Migrate applies the pending migrations to the database at url. Several
// migrators may run at once: tern serialises them with an advisory lock
// (pg_advisory_lock in migrate.MigrateTo and around creating its version
// table), so each migration is applied exactly once. It refuses a schema
// newer than this binary knows.
func Migrate(ctx context.Context, url string) error {
	return migrateURL(ctx, url, slog.Default(), nil)
}

// MigrateApplied is Migrate that says what it did, for the operator's
// migrate command: the migrations it applied, in order (none when the
// schema was up to date), and the schema version it left.
func MigrateApplied(ctx context.Context, url string, log *slog.Logger) (applied []string, version int, err error) {
	err = migrateURL(ctx, url, log, func(_ int32, name string) { applied = append(applied, name) })
	if err != nil {
		return applied, 0, err
	}
	return applied, knownVersion, nil
}

func migrateURL(ctx context.Context, url string, log *slog.Logger, onStart func(seq int32, name string)) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return classify("connect to migrate", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return migrate(ctx, conn, log, onStart)
}

// migrate brings the schema on conn up to knownVersion. onStart, if not
// nil, is told of each migration applied (tests count them).
func migrate(ctx context.Context, conn *pgx.Conn, log *slog.Logger, onStart func(seq int32, name string)) error {
	// tern would migrate down to the versions it knows, or fail with a
	// bare range error; say what is wrong instead.
	if v, ok, err := schemaVersion(ctx, conn); err != nil {
		return err
	} else if ok && v > int32(knownVersion) {
		return errSchemaTooNew(v)
	}
	m, err := tern.NewMigrator(ctx, conn, versionTable)
	if err != nil {
		return classify("prepare migrations", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return fmt.Errorf("postgres: load embedded migrations: %w", err)
	}
	m.OnStart = func(seq int32, name, direction, _ string) {
		log.Info("applying schema migration", "version", seq, "name", name, "direction", direction)
		if onStart != nil {
			onStart(seq, name)
		}
	}
	if err := m.Migrate(ctx); err != nil {
		var bv tern.BadVersionError
		if errors.As(err, &bv) {
			// Another, newer binary migrated between our check and
			// tern's lock.
			if v, ok, verr := schemaVersion(ctx, conn); verr == nil && ok && v > int32(knownVersion) {
				return errSchemaTooNew(v)
			}
		}
		return classify("migrate schema", err)
	}
	return nil
}

// schemaVersion reads tern's version table; ok is false before the first
// migration run.
func schemaVersion(ctx context.Context, conn *pgx.Conn) (v int32, ok bool, err error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil {
		return 0, false, classify("read schema version", err)
	}
	if !exists {
		return 0, false, nil
	}
	if err := conn.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&v); err != nil {
		return 0, false, classify("read schema version", err)
	}
	return v, true, nil
}
