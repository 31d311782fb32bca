// Package migrations holds the versioned SQL schema of the PostgreSQL
// block store, embedded in the binary so that `blindstored migrate` and a
// starting server apply exactly the schema the code was built against.
//
// Files are named NNN_description.sql and applied in order by
// github.com/jackc/tern/v2/migrate (blobstore/postgres does that). Each
// file is run once and never edited after release: a change is a new file.
//
// docs/design.md §3 binds every file here: a table may hold only a block's id,
// data, proof hash, ETag and keyed bucket, and the deployment's metadata.
// No migration may ever add a time, date, size, user, counter, serial or
// identity column, a default of now(), or a foreign key between blocks.
// tern evaluates the files as Go templates, so they must not contain "{{".
package migrations

import "embed"

// FS holds the migration files at its root.
//
//go:embed *.sql
var FS embed.FS
