package main

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
)

func getBlock(t *testing.T, url string, id wire.ID) (*http.Response, []byte) {
	t.Helper()
	// A timeout only as a safety net: the tests that read back after
	// killing a store must fail, not hang, if the server does.
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Get(url + "/v1/blocks/" + id.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

// The server on PostgreSQL, as an operator runs it: migrate, serve with
// the store URL from the environment, write and read through the API.
func TestServeOnPostgres(t *testing.T) {
	url := pgtest.URL(t)
	if out, code := runCLI(t, nil, "migrate", "--store", url); code != 0 || !strings.Contains(out, "up to date") {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	}
	if out, code := runCLI(t, []string{"BLINDSTORE_STORE=" + url}, "migrate"); code != 0 {
		t.Fatalf("migrate again, from the environment: exit %d\n%s", code, out)
	}
	if _, code := runCLI(t, nil, "migrate"); code != exitUsage {
		t.Fatalf("migrate without a store: exit %d, want %d", code, exitUsage)
	}
	data := t.TempDir()
	s := startServer(t, []string{"BLINDSTORE_STORE=" + url}, "--data", data, "--block-size", "4096")
	if !strings.Contains(s.logs.String(), "store=PostgreSQL") {
		t.Fatalf("server does not say it runs on PostgreSQL:\n%s", s.logs)
	}
	block := make([]byte, 4096)
	rand.Read(block)
	var w wire.WriteProof
	rand.Read(w[:])
	id := wire.NewID()
	etag, err := putBlock(t.Context(), s.url, id, w, block)
	if err != nil {
		t.Fatal(err)
	}
	resp, body := getBlock(t, s.url, id)
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, block) || resp.Header.Get("ETag") != etag {
		t.Fatalf("GET on PostgreSQL: %s", resp.Status)
	}
	s.kill(t)

	// The same database under another key, or another block size, is refused.
	other, _ := runCLI(t, nil, "keygen")
	out, code := runCLI(t, nil, "serve", "--listen", "127.0.0.1:0", "--store", url, "--block-size", "4096",
		"--bucket-key", strings.TrimSpace(other))
	if code != exitError || !strings.Contains(out, "different") {
		t.Fatalf("PostgreSQL store opened under another bucket key: exit %d\n%s", code, out)
	}
}

// While PostgreSQL is down the API answers 503 with Retry-After, and it
// recovers by itself when PostgreSQL is back, losing no acknowledged write.
func TestPostgresOutageGives503AndRecovers(t *testing.T) {
	c := pgtest.StartCluster(t)
	s := startServer(t, nil, "--store", c.URL(), "--data", t.TempDir(), "--block-size", "4096", "--purge-every", "0")
	block := make([]byte, 4096)
	var w wire.WriteProof
	rand.Read(w[:])
	type acked struct {
		id   wire.ID
		etag string
	}
	var acks []acked
	put := func() (int, http.Header) {
		rand.Read(block)
		id := wire.NewID()
		req, _ := http.NewRequest(http.MethodPut, s.url+"/v1/blocks/"+id.String(), bytes.NewReader(block))
		req.Header.Set("Blind-Proof", wire.EncodeProof(w))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusCreated {
			acks = append(acks, acked{id, resp.Header.Get("ETag")})
		}
		return resp.StatusCode, resp.Header
	}
	for i := 0; i < 20; i++ {
		if code, _ := put(); code != http.StatusCreated {
			t.Fatalf("before the outage: PUT %d", code)
		}
	}

	c.Stop(t)
	code, h := put()
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
		t.Fatalf("PostgreSQL down: PUT %d, Retry-After %q; want 503 with Retry-After", code, h.Get("Retry-After"))
	}
	resp, _ := getBlock(t, s.url, acks[0].id)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("PostgreSQL down: GET %s, want 503 with Retry-After", resp.Status)
	}
	if resp, err := http.Get(s.url + "/readyz"); err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("PostgreSQL down: /readyz %v %v, want 503", resp.Status, err)
	}

	c.Start(t)
	if wait.For(30*time.Second, 200*time.Millisecond, func() bool {
		code, _ = put()
		return code == http.StatusCreated
	}) != nil {
		t.Fatalf("server did not recover within 30 s after PostgreSQL came back: last PUT %d", code)
	}
	for _, a := range acks {
		checkAcked(t, s.url, a.id, a.etag, len(block), "after the outage")
	}
}
