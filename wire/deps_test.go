package wire_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/blindstore/blindstore"

// serverPackages are what a client build must not link: the store and
// its backends, the issuer and spent sets (bbolt, PostgreSQL), the
// scheduler and the bucketer, and the database and Redis drivers.
var serverPackages = []string{
	module + "/blobstore",
	module + "/privacypass/issuer",
	module + "/privacypass/spent",
	module + "/scheduler",
	module + "/bucketer",
	"go.etcd.io/bbolt",
	"github.com/jackc/pgx",
	"github.com/redis/go-redis",
}

// deps lists the packages pkg builds with, itself included, as go list
// -deps sees them with the test's build settings.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, stderr)
	}
	return strings.Fields(string(out))
}

// under reports whether p is root or a package beneath it.
func under(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

// The layering the module promises: a client build links nothing of the
// server, indexfile and wire nothing of either side, and the core of the
// store none of its backends.
func TestDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list dependencies: %v", err)
	}
	for _, pkg := range []string{module + "/cmd/blind", module + "/client", module + "/indexfile"} {
		for _, d := range deps(t, pkg) {
			for _, s := range serverPackages {
				if under(d, s) {
					t.Errorf("%s depends on %s, a server package", pkg, d)
				}
			}
		}
	}
	for _, d := range deps(t, module+"/indexfile") {
		if under(d, module) && d != module+"/indexfile" && d != module+"/wire" {
			t.Errorf("indexfile depends on %s: it may use only wire of this module", d)
		}
	}
	for _, d := range deps(t, module+"/wire") {
		// The standard library's paths have no dot in their first element.
		first, _, _ := strings.Cut(d, "/")
		if d != module+"/wire" && strings.Contains(first, ".") && d != "github.com/google/uuid" {
			t.Errorf("wire depends on %s: it may use only the standard library and github.com/google/uuid", d)
		}
	}
	for _, d := range deps(t, module+"/blobstore") {
		for _, store := range []string{module + "/blobstore/bolt", module + "/blobstore/postgres", "go.etcd.io/bbolt", "github.com/jackc/pgx", "github.com/redis/go-redis"} {
			if under(d, store) {
				t.Errorf("blobstore, the core, depends on %s: stores depend on it, never the reverse", d)
			}
		}
	}
}
