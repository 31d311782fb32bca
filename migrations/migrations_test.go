package migrations

import (
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"
)

// TestMigrationsStayWithinTheDesign is a static guard beside the live
// schema check in blobstore/postgres: no migration may introduce a time,
// a default, a sequence or an identity, and none may contain what tern's
// template engine would interpret.
func TestMigrationsStayWithinTheDesign(t *testing.T) {
	files, err := fs.Glob(FS, "*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no migrations embedded")
	}
	name := regexp.MustCompile(`^\d{3}_[a-z0-9_]+\.sql$`)
	forbidden := regexp.MustCompile(`(?i)\b(timestamp|timestamptz|date|time|interval|serial|bigserial|smallserial|identity|default|now|current_timestamp|clock_timestamp|sequence|references)\b`)
	for i, f := range files {
		if !name.MatchString(f) {
			t.Errorf("%s: migration files are named NNN_words.sql", f)
		}
		if !strings.HasPrefix(f, fmt.Sprintf("%03d_", i+1)) {
			t.Errorf("%s: migrations must be numbered 001, 002, … without gaps", f)
		}
		b, err := fs.ReadFile(FS, f)
		if err != nil {
			t.Fatal(err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			code, _, _ := strings.Cut(line, "--")
			if m := forbidden.FindString(code); m != "" {
				t.Errorf("%s:%d: %q has no place in this schema (docs/design.md §3)", f, n+1, m)
			}
			if strings.Contains(line, "{{") {
				t.Errorf("%s:%d: {{ would be read by tern as a template action", f, n+1)
			}
		}
	}
}
