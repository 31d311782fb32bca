package testenv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRequired(t *testing.T) {
	cases := []struct {
		ci, require string
		want        bool
	}{
		{"", "", false},
		{"true", "", true},
		{"", "1", true},
		{"", "0", false},
	}
	for _, c := range cases {
		t.Setenv("CI", c.ci)
		t.Setenv("BLINDSTORE_REQUIRE_SERVICES", c.require)
		if got := Required(); got != c.want {
			t.Errorf("CI=%q BLINDSTORE_REQUIRE_SERVICES=%q: Required() = %v, want %v", c.ci, c.require, got, c.want)
		}
	}
}

func TestUnavailableRecordsSkip(t *testing.T) {
	log := filepath.Join(t.TempDir(), "skipped")
	t.Setenv("CI", "")
	t.Setenv("BLINDSTORE_REQUIRE_SERVICES", "")
	t.Setenv("BLINDSTORE_SKIP_LOG", log)
	t.Run("inner", func(t *testing.T) {
		Unavailable(t, "no %s here", "PostgreSQL")
		t.Error("Unavailable returned instead of skipping")
	})
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b); !strings.Contains(got, "TestUnavailableRecordsSkip/inner: no PostgreSQL here") {
		t.Fatalf("skip log = %q", got)
	}
}
