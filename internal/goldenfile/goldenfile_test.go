package goldenfile

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestReadWritesOnlyUnderUpdate(t *testing.T) {
	was := *update
	defer func() { *update = was }()
	*update = false
	path := filepath.Join(t.TempDir(), "sub", "x.golden")
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := Read(t, path, []byte("new")); !bytes.Equal(got, []byte("kept")) {
		t.Fatalf("without -update Read gave %q, want the file as it was", got)
	}

	*update = true
	if !Update() {
		t.Fatal("Update() false under -update")
	}
	fresh := filepath.Join(t.TempDir(), "new", "dir", "y.golden")
	if got := Read(t, fresh, []byte("new")); !bytes.Equal(got, []byte("new")) {
		t.Fatalf("under -update Read gave %q, want what it wrote", got)
	}
}
