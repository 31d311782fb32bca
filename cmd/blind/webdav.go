package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/cli"
	"github.com/blindstore/blindstore/internal/davserver"
)

// webdavUser is the basic-auth user name; the password is what keeps
// other local users out.
const webdavUser = "blind"

func serveCommand() *command {
	c := newCommand("serve", "webdav [--listen ADDR] [--read-only]", "Serve the account as WebDAV from this machine, for file managers, rclone and\n"+
		"restic (see docs/webdav.md). Files are encrypted and decrypted in this process;\n"+
		"nothing decrypted is written to disk. Requests need HTTP basic auth: user\n"+
		"\"blind\", and the password in BLIND_WEBDAV_PASSWORD, else a new one printed once\n"+
		"at start. It listens on loopback only unless --listen names another address,\n"+
		"which then needs --tls-cert and --tls-key. Folders are name prefixes, an empty\n"+
		"one kept as sync keeps it; a move is a rename in the index (no data sent); an\n"+
		"upload is committed when it completes, sending only the chunks that changed.\n"+
		"Dead properties (PROPPATCH) and locks are kept in memory only. A small file\n"+
		"(up to 256 KiB) is answered once it is in an encrypted journal in the\n"+
		"configuration directory and committed in batches in the background; a crash\n"+
		"leaves it there, committed at the next start (--journal=false: answered once\n"+
		"committed). While it runs it renews the account at each new period. Ctrl-C\n"+
		"stops it once the uploads in progress are committed (a second Ctrl-C abandons\n"+
		"them; journaled files wait for the next start).", nil)
	c.Complete = []string{"webdav"}
	listen := c.Flags.String("listen", "127.0.0.1:8787", "`address` to listen on (host:port; port 0 picks a free one)")
	readOnly := c.Flags.Bool("read-only", false, "refuse every change (PUT, DELETE, MKCOL, MOVE, COPY, PROPPATCH, LOCK)")
	cert := c.Flags.String("tls-cert", "", "serve HTTPS with this certificate `file` (PEM); needed for a non-loopback --listen")
	key := c.Flags.String("tls-key", "", "the certificate's private key `file` (PEM)")
	refresh := c.Flags.Duration("refresh", 30*time.Second, "how often to look for other devices' changes")
	logRequests := c.Flags.Bool("log-requests", false, "log each request (method, path, status) to standard error")
	useJournal := c.Flags.Bool("journal", true, "answer a small PUT once it is in the encrypted journal, not once it is committed (off with --read-only)")
	c.run = func(a *app) error {
		if len(c.Args) != 1 || c.Args[0] != "webdav" {
			return cli.Usagef("want 'serve webdav'")
		}
		if (*cert == "") != (*key == "") {
			return cli.Usagef("--tls-cert and --tls-key go together")
		}
		if *refresh < time.Second {
			return cli.Usagef("--refresh must be at least 1s")
		}
		if !loopback(*listen) && *cert == "" {
			return cli.Usagef("--listen %s is reachable from other machines: give --tls-cert and --tls-key, or listen on 127.0.0.1", *listen)
		}
		opt := davserver.Options{User: webdavUser, Password: os.Getenv(envPrefix + "WEBDAV_PASSWORD"), ReadOnly: *readOnly, Refresh: *refresh}
		if *logRequests {
			opt.Log = slog.New(slog.NewTextHandler(a.stderr, nil))
		}
		if *useJournal && !*readOnly {
			dir, err := configDir()
			if err != nil {
				return err
			}
			opt.JournalDir = dir
		}
		return a.serveWebDAV(*listen, *cert, *key, opt)
	}
	return c
}

// loopback reports whether addr (host:port) is reachable only from this
// machine.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (a *app) serveWebDAV(listen, cert, key string, opt davserver.Options) error {
	printed := false
	if opt.Password == "" {
		b := make([]byte, 18)
		if _, err := rand.Read(b); err != nil {
			return err
		}
		opt.Password, printed = base64.RawURLEncoding.EncodeToString(b), true
	}
	s, err := loadSession()
	if err != nil {
		return err
	}
	return a.withAccount(func(acc *client.Account) error {
		go a.keepRenewed(acc, s.DeviceKeyFile)
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return &client.Error{Kind: client.KindLocalIO, Msg: "listening on " + listen, Err: err}
		}
		if opt.JournalDir != "" {
			opt.JournalKey = acc.LocalKey("webdav-journal")
		}
		srv, err := davserver.New(acc, opt)
		if err != nil {
			ln.Close()
			return &client.Error{Kind: client.KindLocalIO, Msg: "opening the WebDAV journal", Err: err}
		}
		scheme := "http"
		if cert != "" {
			scheme = "https"
		}
		if printed {
			fmt.Fprintf(a.stdout, "password: %s\n", opt.Password)
		}
		fmt.Fprintf(a.stderr, "blind serve webdav: url=%s://%s/ user=%s%s (Ctrl-C to stop)\n", scheme, ln.Addr(), webdavUser, map[bool]string{true: " read-only"}[opt.ReadOnly])
		served := make(chan error, 1)
		go func() { served <- srv.Serve(ln, cert, key) }()
		select {
		case err := <-served:
			return &client.Error{Kind: client.KindLocalIO, Msg: "serving WebDAV", Err: err}
		case <-a.ctx.Done(): // the first SIGINT or SIGTERM
		}
		// A second signal abandons the uploads still in progress.
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sigs)
		if n := srv.FS().OpenUploads(); n > 0 {
			fmt.Fprintf(a.stderr, "blind serve webdav: stopping once %d upload(s) are committed (Ctrl-C again to abandon them)\n", n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-sigs:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
			return &client.Error{Kind: client.KindOther, Msg: "stopped before every upload was committed: those in progress were not; small files already answered stay in the journal for the next start", Err: err}
		}
		<-served
		counts := srv.Counts()
		fmt.Fprintf(a.stderr, "blind serve webdav: stopped after %d requests (%d PUT, %d GET)\n", total(counts), counts["PUT"], counts["GET"])
		return nil
	})
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// keepRenewed renews the account whenever a new period makes it stale,
// as a running 'blind sync --watch' does: a server left running keeps
// the data alive. It stops with the command.
func (a *app) keepRenewed(acc *client.Account, deviceKeyFile string) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case <-t.C:
		}
		cur, err := acc.Remote().CurrentPeriod(a.ctx)
		if err != nil || !acc.Stale(cur) {
			continue
		}
		if _, err := a.renewPaid(acc); err != nil {
			fmt.Fprintf(a.stderr, "blind serve webdav: renewing: %v (trying again within the hour)\n", err)
			continue
		}
		if err := a.saveAccount(acc, deviceKeyFile); err != nil {
			fmt.Fprintf(a.stderr, "blind serve webdav: saving the session: %v\n", err)
		}
	}
}
