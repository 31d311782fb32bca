// Package goldenfile keeps what a test must produce in a file beside it
// (testdata), so that a change of an encoding shows as a failing test
// and a deliberate one as a reviewed file. go test -update rewrites the
// files from what the tests produce now.
package goldenfile

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// Update reports whether the test run was asked to rewrite golden files.
func Update() bool { return *update }

// Read returns the golden file at path, after writing want to it (and
// its folder) if the run rewrites golden files.
func Read(t testing.TB, path string, want []byte) []byte {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update once to create it)", err)
	}
	return b
}
