//go:build !unix

package davserver

// lockJournal does not lock where flock is missing: running two servers
// of one account and configuration at once is then up to the user.
func lockJournal(string) (func(), error) { return func() {}, nil }
