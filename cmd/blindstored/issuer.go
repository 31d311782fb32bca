package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/privacypass/issuer"
)

// issuerEnvPrefix prefixes the issuer's environment fallbacks:
// --data falls back to BLINDSTORE_ISSUER_DATA, never to serve's
// BLINDSTORE_DATA.
const issuerEnvPrefix = envPrefix + "ISSUER_"

// issuerCommand is `blindstored issuer`: the Privacy Pass token issuer of
// docs/design.md §11, on its own listener and with its own data directory,
// apart from any blob server (which must never learn who holds which
// invite). `blindstored issuer invite` makes invite codes.
func issuerCommand(stdout, stderr io.Writer) *command {
	c := &command{name: "issuer", usage: "[--listen ADDR] [--data DIR] [--period 720h]",
		summary: "Issue Privacy Pass tokens to holders of invite codes (RFC 9578, blind RSA); 'issuer invite' makes a code.",
		flags:   newFlagSet("issuer"), env: issuerEnvPrefix}
	listen := c.flags.String("listen", "127.0.0.1:7879", "`address` to serve the issuer on (port 0 picks a free one)")
	data := c.flags.String("data", "./issuer-data", "issuer data `directory`: token keys, invite codes, tokens taken this period")
	period := c.flags.Duration("period", bucketer.DefaultPeriod, "token key rotation and allotment period (whole seconds); each invite gets its tokens anew every period")
	logLevel := c.flags.String("log-level", "info", "log `level`: debug, info, warn or error (no level logs invite codes, tokens or addresses)")
	shutdown := c.flags.Duration("shutdown-timeout", 30*time.Second, "how long to let requests finish on SIGINT or SIGTERM")
	var origins originList
	c.flags.Var(&origins, "cors-origin", "let browser apps on this `origin` (the blob server's app, https://store.example) fetch tokens; repeat it, or separate several with commas")
	var tf tlsFlags
	tf.register(c.flags)
	c.subs = map[string]*command{"invite": inviteCommand(stdout)}
	c.run = func(args []string) error {
		log, tlsConfig, err := beginServer(args, stderr, *logLevel, &tf)
		if err != nil {
			return err
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		is, err := issuer.Open(issuer.Config{Dir: *data, Period: *period, Logger: log})
		if err != nil {
			return err
		}
		defer is.Close()
		rctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go is.Run(rctx)

		srv := &http.Server{
			Handler:           httpapi.CORS(origins, []string{http.MethodGet, http.MethodPost}, is.Handler()),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    16 << 10,
			TLSConfig:         tlsConfig,
			// net/http's own error lines name clients: the API's filter drops them.
			ErrorLog: httpapi.NewServer(nil, httpapi.Options{Logger: log}).ErrorLog,
		}
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return fmt.Errorf("listen: %w", err)
		}
		log.Info("blindstored issuer serving", "url", urlScheme(tlsConfig)+"://"+ln.Addr().String(), "data", *data, "period", *period, "keys", len(is.KeyPeriods()))
		if err := serveUntilDone(ctx, srv, ln, tlsConfig); err != nil {
			return err
		}
		sctx, scancel := context.WithTimeout(context.Background(), *shutdown)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("shutdown did not finish cleanly", "err", err)
		}
		log.Info("stopped")
		return nil
	}
	return c
}

// inviteCommand is `blindstored issuer invite`: it writes a new invite
// code into the issuer's data directory (the issuer need not be stopped)
// and prints it, once.
func inviteCommand(stdout io.Writer) *command {
	ic := &command{name: "issuer invite", usage: "[--data DIR] --tokens N",
		summary: "Make an invite code worth N tokens per period, and print it.", flags: newFlagSet("issuer invite"), env: issuerEnvPrefix}
	dir := ic.flags.String("data", "./issuer-data", "issuer data `directory`")
	tokens := ic.flags.Int("tokens", 0, "`N` tokens per period the code may take (each pays for one write or renewal of up to write_batch blocks)")
	ic.run = func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Errorf("unexpected arguments %q", strings.Join(args, " "))}
		}
		if *tokens < 1 {
			return usageError{fmt.Errorf("--tokens must be at least 1")}
		}
		code, err := issuer.CreateInvite(*dir, *tokens)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, code)
		return nil
	}
	return ic
}
