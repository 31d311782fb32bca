package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/wait"
	"github.com/blindstore/blindstore/wire"
)

var adminRE = regexp.MustCompile(`admin=(http://127\.0\.0\.1:\d+)`)

// adminURL is where a server started with --admin-listen serves.
func adminURL(t *testing.T, s *server) string {
	t.Helper()
	m := adminRE.FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("the server does not say where its admin listener is:\n%s", s.logs)
	}
	return m[1]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// sample returns the value of one series in a text exposition, -1 when
// absent.
func sample(text, series string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// secrets collects every printable form of what must never reach the
// metrics.
type secrets []string

func (s *secrets) id(id wire.ID) {
	*s = append(*s, id.String(), hex.EncodeToString(id[:]), base64.RawURLEncoding.EncodeToString(id[:]))
}

func (s *secrets) bytes(b []byte) {
	*s = append(*s, hex.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b), base64.RawStdEncoding.EncodeToString(b))
}

func (s *secrets) etag(e string) {
	*s = append(*s, e, strings.Trim(e, `"`))
	if raw, err := base64.RawURLEncoding.DecodeString(strings.Trim(e, `"`)); err == nil {
		s.bytes(raw)
	}
}

// The admin listener serves metrics and pprof apart from the API. After a
// workload of every kind of request, the metrics count it by route and
// status, the write pool's commits, the purge and the store's blocks,
// and hold no id, proof, ETag, bucket or client address in any form.
func TestAdminListenerMetricsNameNothing(t *testing.T) {
	data := t.TempDir()
	const bs = 4096
	s := startServer(t, nil, "--data", data, "--block-size", strconv.Itoa(bs), "--admin-listen", "127.0.0.1:0",
		"--trust-proxy-header", "X-Forwarded-For", "--pool-window", "20ms", "--seal-every", "0")
	admin := adminURL(t, s)
	var sec secrets
	const forged = "198.51.100.23"
	sec = append(sec, forged)
	hc := &http.Client{Timeout: 20 * time.Second}
	do := func(method, path string, body []byte, h ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, s.url+path, bytes.NewReader(body))
		if body == nil {
			req.Body = nil
		}
		req.Header.Set("X-Forwarded-For", forged)
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if e := resp.Header.Get("ETag"); e != "" {
			sec.etag(e)
		}
		return resp
	}

	type blk struct {
		id wire.ID
		w  wire.WriteProof
	}
	var blocks []blk
	for range 5 {
		b := blk{id: wire.NewID()}
		rand.Read(b.w[:])
		r := b.w.Renew()
		sec.id(b.id)
		sec.bytes(b.w[:])
		sec.bytes(r[:])
		data := make([]byte, bs)
		rand.Read(data)
		sum := wire.ETagOf(data)
		sec.bytes(sum[:])
		if resp := do("PUT", "/v1/blocks/"+b.id.String(), data, "Blind-Proof", wire.EncodeProof(b.w), "If-None-Match", "*"); resp.StatusCode != http.StatusCreated {
			t.Fatalf("PUT: %s", resp.Status)
		}
		blocks = append(blocks, b)
	}
	for _, b := range blocks {
		do("GET", "/v1/blocks/"+b.id.String(), nil)
	}
	for range 3 {
		id := wire.NewID()
		sec.id(id)
		if resp := do("GET", "/v1/blocks/"+id.String(), nil); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("GET of a missing block: %s", resp.Status)
		}
	}
	renew, _ := json.Marshal(map[string]any{"blocks": []map[string]string{{"id": blocks[0].id.String(), "proof": wire.EncodeProof(blocks[0].w.Renew())}}})
	do("POST", "/v1/renew", renew, "Content-Type", "application/json")
	// A batch of two new blocks.
	var manifest []map[string]any
	var body bytes.Buffer
	var payload []byte
	for range 2 {
		id := wire.NewID()
		var w wire.WriteProof
		rand.Read(w[:])
		sec.id(id)
		sec.bytes(w[:])
		manifest = append(manifest, map[string]any{"id": id.String(), "proof": wire.EncodeProof(w), "create_only": true})
		d := make([]byte, bs)
		rand.Read(d)
		payload = append(payload, d...)
	}
	mj, _ := json.Marshal(map[string]any{"blocks": manifest})
	n := len(mj)
	body.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	body.Write(mj)
	body.Write(payload)
	if resp := do("POST", "/v1/blocks", body.Bytes(), "Content-Type", "application/vnd.blindstore.batch"); resp.StatusCode != http.StatusOK {
		t.Fatalf("batch: %s", resp.Status)
	}
	if resp := do("DELETE", "/v1/blocks/"+blocks[4].id.String(), nil, "Blind-Proof", wire.EncodeProof(blocks[4].w)); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %s", resp.Status)
	}

	// The bucket the blocks were stamped with, in every form.
	keyHex, err := os.ReadFile(filepath.Join(data, "bucket.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, _ := hex.DecodeString(strings.TrimSpace(string(keyHex)))
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: bucketer.DefaultPeriod, Retention: bucketer.DefaultRetention})
	if err != nil {
		t.Fatal(err)
	}
	cur := bk.CurrentBucket()
	sec.bytes(cur[:])
	fp := bk.Fingerprint()
	sec.bytes(fp[:])

	var text string
	// The purge at start runs in the background; the checks below say
	// what is missing if it never ends.
	_ = wait.For(20*time.Second, 100*time.Millisecond, func() bool {
		_, text = httpGet(t, admin+"/metrics")
		return sample(text, "blindstore_purge_runs_total") >= 1
	})
	for series, want := range map[string]float64{
		`blindstore_http_requests_total{code="201",method="PUT",route="/v1/blocks/:id"}`:    5,
		`blindstore_http_requests_total{code="200",method="GET",route="/v1/blocks/:id"}`:    5,
		`blindstore_http_requests_total{code="404",method="GET",route="/v1/blocks/:id"}`:    3,
		`blindstore_http_requests_total{code="200",method="POST",route="/v1/renew"}`:        1,
		`blindstore_http_requests_total{code="200",method="POST",route="/v1/blocks"}`:       1,
		`blindstore_http_requests_total{code="204",method="DELETE",route="/v1/blocks/:id"}`: 1,
		`blindstore_store_blocks`:                       6,
		`blindstore_store_blocks_expired`:               0,
		`blindstore_store_buckets`:                      1,
		`blindstore_purge_runs_total`:                   1,
		`blindstore_purge_refused_total{guard="clock"}`: 0,
		`blindstore_build_info{version="dev"}`:          1,
		`blindstore_pool_commits_total{result="error"}`: 0,
		// 5 puts and 2 in the batch (the deleted one stays unsealed).
		`blindstore_store_blocks_awaiting_seal`: 7,
	} {
		if got := sample(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	// 5 puts, 1 renewal (current already: no write), 1 batch, 1 delete.
	if n := sample(text, "blindstore_pool_batch_ops_sum"); n < 8 {
		t.Errorf("the pool's commits hold %v ops, want at least 8", n)
	}
	if n := sample(text, `blindstore_pool_commits_total{result="ok"}`); n < 1 || n > 8 {
		t.Errorf("%v commits", n)
	}
	if sample(text, "blindstore_http_connections_open") < 0 || sample(text, "go_goroutines") < 1 || sample(text, "process_resident_memory_bytes") <= 0 {
		t.Errorf("connection, runtime or process figures missing:\n%s", text)
	}
	lower := strings.ToLower(text)
	for _, x := range append(sec, "127.0.0.1") {
		if len(x) >= 8 && strings.Contains(lower, strings.ToLower(x)) {
			t.Errorf("the metrics hold %q", x)
		}
	}

	// Neither metrics nor pprof on the public listener.
	for _, p := range []string{"/metrics", "/debug/pprof/"} {
		if code, _ := httpGet(t, s.url+p); code != http.StatusNotFound {
			t.Errorf("the API serves %s: %d", p, code)
		}
	}
	// pprof, without the pages that could hold secrets.
	for path, want := range map[string]int{
		"/debug/pprof/":                   200,
		"/debug/pprof/heap":               200,
		"/debug/pprof/goroutine?debug=1":  200,
		"/debug/pprof/goroutine?debug=2":  403,
		"/debug/pprof/goroutine?debug=10": 403,
		"/debug/pprof/cmdline":            404,
		"/debug/pprof/profile?seconds=1":  200,
		"/debug/pprof/profile?seconds=99": 400,
	} {
		code, body := httpGet(t, admin+path)
		if code != want {
			t.Errorf("admin %s: %d, want %d", path, code, want)
		}
		if strings.Contains(body, "bucket.key") || strings.Contains(body, data) {
			t.Errorf("admin %s shows the command line", path)
		}
	}
	if !strings.Contains(s.logs.String(), "admin listener serving") {
		t.Fatal("no log line for the admin listener")
	}
}

// Without --admin-listen, no listener is opened and the log says nothing
// of one.
func TestAdminListenerOffByDefault(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--block-size", "4096", "--purge-every", "0")
	if strings.Contains(s.logs.String(), "admin") {
		t.Fatalf("an admin listener without --admin-listen:\n%s", s.logs)
	}
	if code, _ := httpGet(t, s.url+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics on the API: %d", code)
	}
	out, code := runCLI(t, nil, "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--admin-listen", "256.0.0.1:1")
	if code != exitError || !strings.Contains(out, "--admin-listen") {
		t.Fatalf("a bad admin address: exit %d\n%s", code, out)
	}
}

// Scheduled seals are counted, with what they rewrote.
func TestAdminSealMetrics(t *testing.T) {
	s := startServer(t, nil, "--data", t.TempDir(), "--block-size", "4096", "--purge-every", "0", "--seal-every", "1s",
		"--pool-window", "0", "--admin-listen", "127.0.0.1:0")
	admin := adminURL(t, s)
	writeBlocks(t, s.url, 3, 4096)
	var text string
	_ = wait.For(20*time.Second, 200*time.Millisecond, func() bool {
		_, text = httpGet(t, admin+"/metrics")
		return sample(text, "blindstore_seal_blocks_total") >= 3
	})
	if sample(text, "blindstore_seal_blocks_total") != 3 || sample(text, "blindstore_seal_bytes_total") != 3*4096 ||
		sample(text, "blindstore_seal_runs_total") < 1 || sample(text, "blindstore_seal_failed_total") != 0 ||
		sample(text, "blindstore_seal_duration_seconds_count") < 1 {
		t.Fatalf("seal metrics after sealing 3 blocks:\n%s", grepLines(text, "blindstore_seal"))
	}
	// Purges are off: their counters are there, at zero.
	if sample(text, "blindstore_purge_runs_total") != 0 {
		t.Fatalf("purge counters with purges off:\n%s", grepLines(text, "blindstore_purge"))
	}
}

func grepLines(text, prefix string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// On PostgreSQL the read cache counts its hits and misses, and a read of
// a cached block is answered from it: the first GET of a block misses,
// the next ones hit. A server with --read-cache-mib 0 has no such series.
func TestReadCacheMetricsOnPostgres(t *testing.T) {
	c := pgtest.StartCluster(t)
	data := t.TempDir() // the bucket key of both servers
	s := startServer(t, nil, "--store", c.URL(), "--data", data, "--block-size", "4096", "--purge-every", "0",
		"--seal-every", "0", "--pool-window", "0", "--admin-listen", "127.0.0.1:0")
	admin := adminURL(t, s)
	ids, _ := writeBlocks(t, s.url, 2, 4096)
	for range 3 {
		if code, _ := httpGet(t, s.url+"/v1/blocks/"+ids[0].String()); code != http.StatusOK {
			t.Fatalf("GET: %d", code)
		}
	}
	_, text := httpGet(t, admin+"/metrics")
	if h, m := sample(text, "blindstore_read_cache_hits_total"), sample(text, "blindstore_read_cache_misses_total"); h != 2 || m != 1 {
		t.Errorf("after three reads of one block: %v hits and %v misses, want 2 and 1\n%s", h, m, grepLines(text, "read_cache"))
	}
	if b := sample(text, "blindstore_read_cache_blocks"); b != 1 {
		t.Errorf("the cache holds %v blocks, want 1", b)
	}

	off := startServer(t, nil, "--store", c.URL(), "--data", data, "--block-size", "4096", "--purge-every", "0",
		"--seal-every", "0", "--read-cache-mib", "0", "--admin-listen", "127.0.0.1:0")
	if _, text := httpGet(t, adminURL(t, off)+"/metrics"); strings.Contains(text, "read_cache") {
		t.Errorf("a server without a read cache reports one:\n%s", grepLines(text, "read_cache"))
	}
	if out, code := runCLI(t, nil, "serve", "--read-cache-mib", "-1", "--data", t.TempDir()); code != exitUsage || !strings.Contains(out, "--read-cache-mib") {
		t.Errorf("--read-cache-mib -1: exit %d\n%s", code, out)
	}
}
