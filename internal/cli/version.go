package cli

import "runtime/debug"

// Version returns the build's version: linked, the value the Makefile sets
// with -ldflags "-X main.version=…", else the module version that
// `go install module@version` records, else "dev" for a plain `go build`.
func Version(linked string) string {
	if linked != "" {
		return linked
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}
