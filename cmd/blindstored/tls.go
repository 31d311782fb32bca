package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// tlsFlags are serve's flags for serving the API over TLS.
type tlsFlags struct {
	cert string
	key  string
}

func (f *tlsFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.cert, "tls-cert", "", "serve HTTPS with this certificate `file` (PEM, the chain after the leaf); needs --tls-key. Reloaded when it changes on disk")
	fs.StringVar(&f.key, "tls-key", "", "private key `file` (PEM) of --tls-cert")
}

// config returns the TLS configuration of the API listener, or nil when
// TLS is off. It loads the key pair now, so that a wrong file stops the
// start with a clear message rather than failing every handshake.
//
// TLS 1.3 only: every client this server has (the blind CLI, the client
// package, current browsers and curl) speaks it, and 1.3 leaves out the
// handshakes that send the certificate in clear and the ciphers without
// forward secrecy.
func (f *tlsFlags) config(log *slog.Logger) (*tls.Config, error) {
	switch {
	case f.cert == "" && f.key == "":
		return nil, nil
	case f.cert == "" || f.key == "":
		return nil, usageError{errors.New("--tls-cert and --tls-key go together")}
	}
	r := &certReloader{certFile: f.cert, keyFile: f.key, log: log, now: time.Now}
	if err := r.load(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		GetCertificate: r.get,
	}, nil
}

// certReloadEvery bounds how often a handshake looks at the files' times:
// a renewed certificate (certbot, an ACME sidecar) is served within this
// long, without a restart.
const certReloadEvery = 10 * time.Second

// certReloader serves a key pair and reloads it when either file's
// modification time or size changes. A reload that fails keeps the pair
// in use and logs why once per change.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of the loaded files
	checked time.Time
	failed  string // stamp of the files whose reload failed
}

func fileStamp(paths ...string) (string, error) {
	s := ""
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return "", err
		}
		s += fmt.Sprintf("%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return s, nil
}

// load reads and checks the key pair.
func (r *certReloader) load() error {
	stamp, err := fileStamp(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS: %w", err)
	}
	if fi, err := os.Stat(r.keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("TLS: key file %s is readable by others (mode %v); run: chmod 600 %s", r.keyFile, fi.Mode().Perm(), r.keyFile)
	}
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("TLS: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return fmt.Errorf("TLS: parse %s: %w", r.certFile, err)
	}
	now := r.now()
	if now.After(leaf.NotAfter) {
		return fmt.Errorf("TLS: the certificate in %s expired on %s", r.certFile, leaf.NotAfter.UTC().Format(time.DateOnly))
	}
	c.Leaf = leaf
	r.mu.Lock()
	r.cert, r.stamp, r.checked = &c, stamp, now
	r.mu.Unlock()
	r.log.Info("TLS certificate loaded", "file", r.certFile, "not_after", leaf.NotAfter.UTC().Format(time.DateOnly))
	return nil
}

// get is tls.Config.GetCertificate. It never looks at the client hello:
// one deployment, one certificate.
func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	now := r.now()
	if now.Sub(r.checked) < certReloadEvery {
		c := r.cert
		r.mu.Unlock()
		return c, nil
	}
	r.checked = now
	stamp, err := fileStamp(r.certFile, r.keyFile)
	c := r.cert
	changed := err == nil && stamp != r.stamp && stamp != r.failed
	r.mu.Unlock()
	if !changed {
		return c, nil
	}
	if err := r.load(); err != nil {
		r.mu.Lock()
		r.failed = stamp
		r.mu.Unlock()
		r.log.Warn("TLS certificate changed on disk but does not load; still serving the previous one", "err", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert, nil
}
