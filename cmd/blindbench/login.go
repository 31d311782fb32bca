package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/blindstore/blindstore/client"
)

// loginRows times a login to an account of loginFiles files: what blind
// login does (client.Login, which derives the keys with Argon2id and
// reads the root, head and index, then Account.Renew), less the Argon2id
// time measured beside it in the same rounds.
//
// The account is built through the client, loginChunk files of 1 KiB per
// Account.PutMany, on a server without the pool's window (when it has
// that flag) so that the build does not wait for company; the logins then
// run against a restart of the same store with the server's defaults.
// The build stops at -login-build: a row short of the files asked for
// says how far it got and is not judged against the target.
func (b *bench) loginRows(ctx context.Context) []Row {
	c := b.cfg
	name := fmt.Sprintf("login, %d files", c.loginFiles)
	if why, ok := b.budget(ctx, c.loginBuild+20*time.Second); !ok {
		return []Row{skipRow("login", name, why)}
	}
	extra := append([]string(nil), c.serverArgs...)
	if b.serveFlags["pool-window"] {
		extra = append(extra, "--pool-window", "0")
	}
	b.logf("login: building an account of up to %d files (at most %v)", c.loginFiles, c.loginBuild)
	build, err := b.startChild(ctx, serverSpec{blockSize: blockSize, extra: extra}, "login-build")
	if err != nil {
		return []Row{failRow("login", name, err)}
	}
	defer build.cleanup()
	const user = "bench"
	var pwb [12]byte
	fillRandom(pwb[:])
	pw := fmt.Sprintf("bench-%x", pwb)
	remote, err := client.NewRemote(build.url, b.hc)
	if err != nil {
		return []Row{failRow("login", name, err)}
	}
	acc, _, err := client.Signup(ctx, remote, user, pw, nil)
	if err != nil {
		return []Row{failRow("login", name, fmt.Errorf("signup: %w", err))}
	}
	t0 := time.Now()
	stopAt := t0.Add(c.loginBuild)
	files := 0
	for files < c.loginFiles && time.Now().Before(stopAt) {
		n := min(loginChunk, c.loginFiles-files)
		srcs := make([]client.PutSource, n)
		for i := range srcs {
			content := make([]byte, 1024)
			fillRandom(content)
			srcs[i] = client.PutSource{Name: fmt.Sprintf("documents/notes-%05d.txt", files+i), R: bytes.NewReader(content), Mode: 0o644, ModTime: time.Now()}
		}
		if _, err := acc.PutMany(ctx, srcs); err != nil {
			return []Row{failRow("login", name, fmt.Errorf("put files %d to %d: %w", files+1, files+n, err))}
		}
		files += n
	}
	buildTime := time.Since(t0)
	if err := build.stop(); err != nil {
		return []Row{failRow("login", name, err)}
	}
	srv, err := b.startChild(ctx, serverSpec{blockSize: blockSize, extra: c.serverArgs, data: build.data, keyFile: build.keyFile, key: build.key}, "login")
	if err != nil {
		return []Row{failRow("login", name, err)}
	}
	defer srv.cleanup()

	rounds := 7
	if c.quick {
		rounds = 2
	}
	// Argon2id's first run in a process is slower (its 64 MiB are fresh
	// pages); one unmeasured login warms both up. Each round then times
	// Argon2id alone and a login right after it, and the figure is the
	// median of the rounds' differences.
	var kdfs, logins, opens, renews, beyonds []time.Duration
	for r := -1; r < rounds; r++ {
		k0 := time.Now()
		if _, err := client.PasswordLocator(user, pw, nil); err != nil {
			return []Row{failRow("login", name, err)}
		}
		kdf := time.Since(k0)
		// A new remote each time, as a new blind process has.
		rem, err := client.NewRemote(srv.url, newHTTPClient(16))
		if err != nil {
			return []Row{failRow("login", name, err)}
		}
		l0 := time.Now()
		a, err := client.Login(ctx, rem, user, pw, nil)
		if err != nil {
			return []Row{failRow("login", name, fmt.Errorf("login: %w", err))}
		}
		opened := time.Since(l0)
		rep, err := a.Renew(ctx)
		if err != nil {
			return []Row{failRow("login", name, fmt.Errorf("renew at login: %w", err))}
		}
		total := time.Since(l0)
		if n := len(a.Files()); n != files {
			return []Row{failRow("login", name, fmt.Errorf("login saw %d files, want %d", n, files))}
		}
		if rep.Missing != 0 {
			return []Row{failRow("login", name, fmt.Errorf("login found %d blocks missing", rep.Missing))}
		}
		if r < 0 {
			continue
		}
		kdfs, logins, opens, renews = append(kdfs, kdf), append(logins, total), append(opens, opened-kdf), append(renews, total-opened)
		beyonds = append(beyonds, total-kdf)
	}
	kdf, login, open, ren, beyond := median(kdfs), median(logins), median(opens), median(renews), median(beyonds)
	row := Row{
		Group: "login", Name: name, Figure: ms(beyond), Unit: "ms beyond Argon2id",
		Target: &Target{On: "figure", Op: "<=", Value: 100},
		Extra: map[string]float64{
			"login_ms": ms(login), "argon2id_ms": ms(kdf), "renew_ms": ms(ren),
			"open_beyond_argon2id_ms": ms(open), "files": float64(files), "build_seconds": buildTime.Seconds(),
		},
		Note: fmt.Sprintf("client.Login then Account.Renew, as blind login does, without the process start; medians of %d rounds: Login+Renew %.0f ms, Argon2id %.0f ms; beyond Argon2id: reading root, head and index %.1f ms, the renewal at login %.1f ms (it re-sends the roots, head and index blocks: a write, which goes through the pool)",
			rounds, ms(login), ms(kdf), ms(open), ms(ren)),
	}
	if files < c.loginFiles {
		row.Name = fmt.Sprintf("login, %d of %d files", files, c.loginFiles)
		row.Target = nil
		row.Note = fmt.Sprintf("not judged: building the account stopped at %d of %d files after %v (-login-build). ",
			files, c.loginFiles, buildTime.Round(time.Second)) + row.Note
	}
	return []Row{row}
}

// loginChunk is the files of one PutMany while the account is built.
const loginChunk = 500

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
