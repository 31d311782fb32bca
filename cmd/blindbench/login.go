package main

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/countproxy"
)

// accountSpec is one account the login rows build and measure: the login
// row's (10,000 files by default) or the scale row's (100,000).
type accountSpec struct {
	row   string // "login" or "scale": -rows name, log and server labels
	files int
	build time.Duration
	// loginTarget is the most milliseconds a login with nothing stale
	// may take beyond Argon2id.
	loginTarget float64
	// blocksTarget is the most blocks the whole account may take
	// (0: no target).
	blocksTarget float64
}

// maxIndexWrite is issue 10's bound on the index blocks a one-file
// change writes, whatever the account's size.
const maxIndexWrite = 8

// accountRows builds an account of spec.files files of 1 KiB through the
// client and measures on it what issues 6 and 10 set targets for:
//
//   - login: what blind login does (client.Login, which derives the keys
//     with Argon2id and reads the root, head and index, then
//     Account.Renew), beyond Argon2id: the derivation and the rest are
//     timed apart (loginOnce). Two cases: nothing stale (every login but the first of
//     a period, on any device: the index records the account's last
//     renewal, and Renew then sends nothing), and the first login of a
//     period, which renews every block through the server's write pool
//     and records that in the index. The server runs with a short
//     -login-period so that a period boundary comes within the row.
//   - the index blocks a one-file change writes, counted by a proxy in
//     front of the server (the file is small, so inline: every block of
//     its batch write is an index block);
//   - the blocks the whole account takes, counted in the server's store.
//
// The account is built a few thousand files per Account.PutMany on a server
// without the pool's window (when it has that flag), so that the build
// does not wait for company; the logins then run against a restart of
// the same store with the server's defaults. The build stops at
// spec.build: rows short of the files asked for say how far they got and
// are not judged against the targets.
func (b *bench) accountRows(ctx context.Context, spec accountSpec) []Row {
	c := b.cfg
	n := spec.files
	names := []string{
		fmt.Sprintf("login, %d files, nothing stale", n),
		fmt.Sprintf("login, %d files, first of a period", n),
		fmt.Sprintf("one-file change in %d files: index blocks written", n),
		fmt.Sprintf("%d files of 1 KiB: blocks in all", n),
	}
	groups := []string{"login", "login", "index", "index"}
	for _, name := range cachedNames(n) {
		names, groups = append(names, name), append(groups, "cache")
	}
	all := func(f func(group, name string) Row) []Row {
		rows := make([]Row, len(names))
		for i := range names {
			rows[i] = f(groups[i], names[i])
		}
		return rows
	}
	fail := func(err error) []Row { return all(func(g, n string) Row { return failRow(g, n, err) }) }
	// The build at a pessimistic 2,000 files/s (this machine: 30,000),
	// a period boundary, the rounds, the blind commands.
	expect := min(spec.build, time.Duration(n/2000+1)*time.Second)
	if why, ok := b.budget(ctx, expect+2*c.loginPeriod+60*time.Second); !ok {
		return all(func(g, n string) Row { return skipRow(g, n, why) })
	}
	extra := b.argsWithoutWindow()
	b.logf("%s: building an account of up to %d files (at most %v)", spec.row, n, spec.build)
	build, err := b.startChild(ctx, serverSpec{blockSize: blockSize, period: c.loginPeriod, extra: extra}, spec.row+"-build")
	if err != nil {
		return fail(err)
	}
	defer build.cleanup()
	cfg, err := getConfig(ctx, b.hc, build.url)
	if err != nil {
		return fail(err)
	}
	const user = "bench"
	pw := benchPassword()
	remote, err := client.NewRemote(build.url, b.hc)
	if err != nil {
		return fail(err)
	}
	acc, _, err := client.Signup(ctx, remote, user, pw, nil)
	if err != nil {
		return fail(fmt.Errorf("signup: %w", err))
	}
	t0 := time.Now()
	stopAt := t0.Add(spec.build)
	files := 0
	for files < n && time.Now().Before(stopAt) {
		k := min(max(loginChunk, n/20), n-files)
		srcs := make([]client.PutSource, k)
		for i := range srcs {
			srcs[i] = client.PutSource{Name: benchFileName(files + i), R: bytes.NewReader(randomKiB()), Mode: 0o644, ModTime: time.Now()}
		}
		if _, err := acc.PutMany(ctx, srcs); err != nil {
			return fail(fmt.Errorf("put files %d to %d: %w", files+1, files+k, err))
		}
		files += k
	}
	buildTime := time.Since(t0)
	// Every block must still be live at the first login, which renews.
	if lifetime := time.Duration(cfg.RetentionPeriods-2) * c.loginPeriod; buildTime > lifetime {
		return fail(fmt.Errorf("building took %v, longer than the %v an untouched block is sure to live with -login-period %v: raise -login-period", buildTime.Round(time.Millisecond), lifetime, c.loginPeriod))
	}
	if err := build.stop(); err != nil {
		return fail(err)
	}
	stored, err := storeBlocks(ctx, build, c.loginPeriod, cfg.RetentionPeriods)
	if err != nil {
		return fail(err)
	}
	srv, err := b.startChild(ctx, serverSpec{blockSize: blockSize, period: c.loginPeriod, extra: c.serverArgs, data: build.data, keyFile: build.keyFile, key: build.key}, spec.row)
	if err != nil {
		return fail(err)
	}
	defer srv.cleanup()

	rounds := 7
	if c.quick {
		rounds = 2
	}
	// Argon2id's first run in a process is slower (its 64 MiB are fresh
	// pages); one unmeasured login warms both up, and renews what the
	// build left stale. The figures are the medians of the rounds, a
	// round counting as "nothing stale" or "first of a period" by
	// whether its renewal sent anything.
	var fresh, renewing []loginRound
	for r := -1; len(fresh) < rounds && r < 3*rounds; r++ {
		lr, err := b.loginOnce(ctx, srv.url, user, pw, files)
		if err != nil {
			return fail(err)
		}
		switch {
		case r < 0:
		case lr.sent == 0:
			fresh = append(fresh, lr)
		default:
			renewing = append(renewing, lr)
		}
	}
	if len(renewing) == 0 {
		if err := waitNextPeriod(ctx, b, srv.url, c.loginPeriod); err != nil {
			return fail(err)
		}
		lr, err := b.loginOnce(ctx, srv.url, user, pw, files)
		if err != nil {
			return fail(err)
		}
		if lr.sent == 0 {
			return fail(fmt.Errorf("the first login after a period boundary renewed nothing"))
		}
		renewing = append(renewing, lr)
	}
	if len(fresh) == 0 {
		return fail(fmt.Errorf("every one of %d logins renewed something: -login-period %v is too short for a login", 3*rounds, c.loginPeriod))
	}

	worst, puts, err := b.oneFileChange(ctx, srv.url, user, pw, files)
	if err != nil {
		return fail(err)
	}

	notJudged := ""
	if files < n {
		notJudged = fmt.Sprintf("not judged: building the account stopped at %d of %d files after %v (-%s-build). ", files, n, buildTime.Round(time.Second), spec.row)
	}
	judged := func(t *Target) *Target {
		if files < n {
			return nil
		}
		return t
	}
	f, rn := summarize(fresh), summarize(renewing)
	rows := []Row{
		{
			Group: "login", Name: names[0], Figure: ms(f.beyond), Unit: "ms beyond Argon2id",
			Target: judged(&Target{On: "figure", Op: "<=", Value: spec.loginTarget}),
			Extra: map[string]float64{
				"login_ms": ms(f.total), "argon2id_ms": ms(f.kdf), "renew_ms": ms(f.renew),
				"open_beyond_argon2id_ms": ms(f.open), "files": float64(files), "build_seconds": buildTime.Seconds(), "rounds": float64(len(fresh)),
			},
			Note: notJudged + fmt.Sprintf("client.Login then Account.Renew, as blind login does (timed as client.PasswordLocator, Argon2id, then client.LoginLocator and Renew), without the process start, in a period in which the account was renewed already (every login but the first of a period, on any device); medians of %d rounds: Login+Renew %.0f ms, Argon2id %.0f ms; beyond Argon2id: reading root, head and index %.1f ms, Renew %.1f ms (it sends nothing: the index records the period of the last renewal)",
				len(fresh), ms(f.total), ms(f.kdf), ms(f.open), ms(f.renew)),
		},
		{
			Group: "login", Name: names[1], Figure: ms(rn.beyond), Unit: "ms beyond Argon2id",
			Extra: map[string]float64{
				"login_ms": ms(rn.total), "argon2id_ms": ms(rn.kdf), "renew_ms": ms(rn.renew),
				"open_beyond_argon2id_ms": ms(rn.open), "blocks_renewed": float64(rn.sent), "rounds": float64(len(renewing)),
			},
			Note: notJudged + fmt.Sprintf("the first login of a period (server --period %v here): Renew sends the %d blocks the account refers to in shuffled batches through the server's write pool, and records the renewal in the index (its first dir, one block, written beside the renewal; then the head and the deletion of the old dir, in one atomic batch); median of %d: Login+Renew %.0f ms, Argon2id %.0f ms; reading %.1f ms, renewing and recording %.1f ms. No target: that is two round trips through the pool, each waiting for its window (250 ms by default), the mixing that hides whose blocks these are",
				c.loginPeriod, rn.sent, len(renewing), ms(rn.total), ms(rn.kdf), ms(rn.open), ms(rn.renew)),
		},
		{
			Group: "index", Name: names[2], Figure: float64(worst), Unit: "blocks",
			Target: judged(&Target{On: "figure", Op: "<=", Value: maxIndexWrite}),
			Note: notJudged + fmt.Sprintf("the most blocks of one batch write (index blocks: the file is 1 KiB, kept inline) the server received for a put that replaces one file, over %d puts spread over the account, counted by a proxy in front of the server; besides, %d overwrites of the head in all",
				oneFileChanges, puts),
		},
		{
			Group: "index", Name: names[3], Figure: float64(stored), Unit: "blocks",
			Note: notJudged + fmt.Sprintf("blocks in the server's store after the build (the store counted once the server stopped): the roots, the head, the index and the data of %d files of 1 KiB (kept inline in the index)", files),
		},
	}
	if spec.blocksTarget > 0 {
		rows[3].Target = judged(&Target{On: "figure", Op: "<=", Value: spec.blocksTarget})
	}
	// The targets of the cached commands are for the scale row's
	// account; the login row's shows the same at its size.
	cached, err := b.cachedRows(ctx, srv, user, pw, files, spec.row == "scale" && files == n && n >= 100000)
	if err != nil {
		for i := len(rows); i < len(names); i++ {
			rows = append(rows, failRow(groups[i], names[i], err))
		}
		return rows
	}
	for i := range cached {
		cached[i].Note = notJudged + cached[i].Note
	}
	return append(rows, cached...)
}

// loginChunk is the least files of one PutMany while an account is
// built (a twentieth of the account when that is more: each PutMany
// copies the index in memory).
const loginChunk = 2000

// oneFileChanges is how many puts the one-file change row makes.
const oneFileChanges = 5

func benchFileName(i int) string { return fmt.Sprintf("documents/notes-%06d.txt", i) }

func randomKiB() []byte {
	b := make([]byte, 1024)
	fillRandom(b)
	return b
}

// loginRound is one measured login.
type loginRound struct {
	kdf, open, renew, total, beyond time.Duration
	sent                            int
}

// loginOnce does what client.Login then Account.Renew do, with a new
// remote, as a new blind process has, timing apart the key derivation
// (client.PasswordLocator: Argon2id) and what follows it
// (client.LoginLocator: the root, head and index; then Renew). Timing
// Argon2id beside a whole login and subtracting would leave the noise of
// two Argon2id runs (tens of ms on a shared machine) in a figure of a
// few ms.
func (b *bench) loginOnce(ctx context.Context, url, user, pw string, files int) (loginRound, error) {
	rem, err := client.NewRemote(url, newHTTPClient(16))
	if err != nil {
		return loginRound{}, err
	}
	k0 := time.Now()
	loc, err := client.PasswordLocator(user, pw, nil)
	if err != nil {
		return loginRound{}, err
	}
	kdf := time.Since(k0)
	l0 := time.Now()
	a, err := client.LoginLocator(ctx, rem, user, loc)
	if err != nil {
		return loginRound{}, fmt.Errorf("login: %w", err)
	}
	opened := time.Since(l0)
	rep, err := a.Renew(ctx)
	if err != nil {
		return loginRound{}, fmt.Errorf("renew at login: %w", err)
	}
	beyond := time.Since(l0)
	if n := len(a.Files()); n != files {
		return loginRound{}, fmt.Errorf("login saw %d files, want %d", n, files)
	}
	if rep.Missing != 0 {
		return loginRound{}, fmt.Errorf("login found %d blocks missing", rep.Missing)
	}
	return loginRound{kdf: kdf, open: opened, renew: beyond - opened, total: kdf + beyond, beyond: beyond, sent: rep.Sent}, nil
}

// summarize returns the medians of each figure of rounds.
func summarize(rounds []loginRound) loginRound {
	pick := func(f func(loginRound) time.Duration) time.Duration {
		ds := make([]time.Duration, len(rounds))
		for i, r := range rounds {
			ds[i] = f(r)
		}
		return median(ds)
	}
	sent := make([]int, len(rounds))
	for i, r := range rounds {
		sent[i] = r.sent
	}
	slices.Sort(sent)
	return loginRound{
		kdf: pick(func(r loginRound) time.Duration { return r.kdf }), open: pick(func(r loginRound) time.Duration { return r.open }),
		renew: pick(func(r loginRound) time.Duration { return r.renew }), total: pick(func(r loginRound) time.Duration { return r.total }),
		beyond: pick(func(r loginRound) time.Duration { return r.beyond }), sent: sent[len(sent)/2],
	}
}

// oneFileChange replaces oneFileChanges files spread over the account,
// one put each, through a counting proxy, and returns the most blocks
// one put's batch writes carried and the overwrites of the head in all.
func (b *bench) oneFileChange(ctx context.Context, url, user, pw string, files int) (worst, puts int, err error) {
	p, err := countproxy.Start(url)
	if err != nil {
		return 0, 0, err
	}
	defer p.Close()
	rem, err := client.NewRemote(p.URL, b.hc)
	if err != nil {
		return 0, 0, err
	}
	a, err := client.Login(ctx, rem, user, pw, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("login for the one-file change: %w", err)
	}
	if _, err := a.Renew(ctx); err != nil {
		return 0, 0, fmt.Errorf("renew before the one-file change: %w", err)
	}
	for i := range oneFileChanges {
		name := benchFileName(i * files / oneFileChanges)
		p.Take()
		if _, err := a.Put(ctx, bytes.NewReader(randomKiB()), client.PutInfo{Name: name, Mode: 0o644, ModTime: time.Now()}, nil); err != nil {
			return 0, 0, fmt.Errorf("put %s: %w", name, err)
		}
		got := p.Take()
		worst, puts = max(worst, got.Batched), puts+got.Puts
	}
	return worst, puts, nil
}

// waitNextPeriod waits until the server's period changes.
func waitNextPeriod(ctx context.Context, b *bench, url string, period time.Duration) error {
	first, err := getConfig(ctx, b.hc, url)
	if err != nil {
		return err
	}
	limit := time.Now().Add(period + 5*time.Second)
	for {
		cur, err := getConfig(ctx, b.hc, url)
		if err != nil {
			return err
		}
		if cur.CurrentPeriod > first.CurrentPeriod {
			return nil
		}
		if time.Now().After(limit) {
			return fmt.Errorf("the server's period did not change within %v", period+5*time.Second)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// storeBlocks counts the blocks in the embedded store of a stopped server.
func storeBlocks(ctx context.Context, srv *child, period time.Duration, retention int) (int64, error) {
	s, _, err := openStopped(ctx, embedded, srv, "", blockSize, period, retention)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	st, err := s.Stats(ctx)
	if err != nil {
		return 0, fmt.Errorf("store stats: %w", err)
	}
	return st.Blocks, nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
