package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/tlstest"
	"github.com/blindstore/blindstore/wire"
)

func tlsClient(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// The API over TLS 1.3 with a certificate from a private CA: a client
// that trusts the CA gets through, one that trusts only the system's
// roots or speaks at most TLS 1.2 does not, and the client package
// refuses an unknown CA at once, saying what to do.
func TestServeTLS(t *testing.T) {
	ca := tlstest.NewCA(t, "blindstore test CA")
	pair := ca.Issue(t, tlstest.Options{})
	s := startServer(t, nil, "--data", t.TempDir(), "--block-size", "4096", "--purge-every", "0",
		"--tls-cert", pair.CertFile, "--tls-key", pair.KeyFile)
	if !strings.HasPrefix(s.url, "https://") {
		t.Fatalf("a TLS server announces %s", s.url)
	}

	pinned := tlsClient(&tls.Config{RootCAs: ca.Pool()})
	resp, err := pinned.Get(s.url + "/v1/config")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("GET /v1/config over TLS: %s, TLS %+v", resp.Status, resp.TLS)
	}

	// A block written and read back through the pinned client package.
	hc, err := client.NewHTTPClient(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	r, err := client.NewRemote(s.url, hc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	data := make([]byte, 4096)
	rand.Read(data)
	var w wire.WriteProof
	rand.Read(w[:])
	id := wire.NewID()
	if _, err := r.Put(ctx, id, w, data, client.Cond{CreateOnly: true}); err != nil {
		t.Fatal(err)
	}
	got, _, err := r.Get(ctx, id, nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back over TLS: %v", err)
	}

	if _, err := tlsClient(&tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12}).Get(s.url + "/healthz"); err == nil {
		t.Fatal("a TLS 1.2 client was served")
	}
	if _, err := tlsClient(nil).Get(s.url + "/healthz"); err == nil {
		t.Fatal("a client trusting only the system's roots accepted the private CA's certificate")
	}
	other := tlstest.NewCA(t, "another CA")
	for name, caFile := range map[string]string{"system roots": "", "another CA": other.File} {
		hc, err := client.NewHTTPClient(caFile)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := client.NewRemote(s.url, hc)
		start := time.Now()
		_, err = r.Config(ctx)
		if client.KindOf(err) != client.KindNetwork || !strings.Contains(err.Error(), "--ca-file") {
			t.Fatalf("%s: client error %v (kind %v), want a network error naming --ca-file", name, err, client.KindOf(err))
		}
		// Not retried with backoff: a retry meets the same certificate.
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: refusing the certificate took %v", name, d)
		}
	}
	if _, err := client.NewHTTPClient(pair.KeyFile); client.KindOf(err) != client.KindInvalid {
		t.Fatalf("a CA file without a certificate: %v", err)
	}

	// The server's log holds neither the client's address nor the
	// failed handshakes' details.
	if logs := strings.ReplaceAll(s.logs.String(), s.url, ""); strings.Contains(logs, "127.0.0.1") {
		t.Fatalf("the log names a client:\n%s", s.logs)
	}
}

func TestTLSFlagsAreChecked(t *testing.T) {
	ca := tlstest.NewCA(t, "blindstore test CA")
	pair := ca.Issue(t, tlstest.Options{})
	expired := ca.Issue(t, tlstest.Options{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)})
	loose := ca.Issue(t, tlstest.Options{})
	if err := os.Chmod(loose.KeyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	serve := func(args ...string) (string, int) {
		return runCLI(t, nil, append([]string{"serve", "--listen", "127.0.0.1:0", "--data", t.TempDir()}, args...)...)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"--tls-cert", pair.CertFile}, exitUsage, "go together"},
		{[]string{"--tls-key", pair.KeyFile}, exitUsage, "go together"},
		{[]string{"--tls-cert", expired.CertFile, "--tls-key", expired.KeyFile}, exitError, "expired"},
		{[]string{"--tls-cert", loose.CertFile, "--tls-key", loose.KeyFile}, exitError, "readable by others"},
		{[]string{"--tls-cert", pair.CertFile, "--tls-key", loose.KeyFile}, exitError, "readable by others"},
		{[]string{"--tls-cert", pair.KeyFile + ".missing", "--tls-key", pair.KeyFile}, exitError, "no such file"},
	} {
		out, code := serve(c.args...)
		if code != c.code || !strings.Contains(out, c.says) {
			t.Errorf("serve %v: exit %d, want %d saying %q:\n%s", c.args, code, c.code, c.says, out)
		}
	}
}

// A renewed certificate is served without a restart, within
// certReloadEvery; one that does not load leaves the previous one in use.
func TestCertReloader(t *testing.T) {
	ca := tlstest.NewCA(t, "blindstore test CA")
	first, second := ca.Issue(t, tlstest.Options{}), ca.Issue(t, tlstest.Options{})
	now := time.Now()
	var logs bytes.Buffer
	r := &certReloader{certFile: first.CertFile, keyFile: first.KeyFile, log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return now }}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	serial := func() string {
		t.Helper()
		c, err := r.get(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.String()
	}
	want1, want2 := first.Cert.SerialNumber.String(), second.Cert.SerialNumber.String()
	if got := serial(); got != want1 {
		t.Fatalf("serving serial %s, want %s", got, want1)
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(second.CertFile, first.CertFile)
	copyFile(second.KeyFile, first.KeyFile)
	now = now.Add(certReloadEvery / 2)
	if got := serial(); got != want1 {
		t.Fatalf("reloaded before certReloadEvery: serial %s", got)
	}
	now = now.Add(certReloadEvery)
	if got := serial(); got != want2 {
		t.Fatalf("after the files changed: serial %s, want %s", got, want2)
	}
	// Half a rotation: a certificate whose key is not there yet.
	if err := os.WriteFile(first.CertFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		now = now.Add(certReloadEvery)
		if got := serial(); got != want2 {
			t.Fatalf("a broken file replaced the certificate in use: serial %s", got)
		}
	}
	if n := strings.Count(logs.String(), "does not load"); n != 1 {
		t.Fatalf("the broken file was reported %d times, want once:\n%s", n, logs.String())
	}
}
