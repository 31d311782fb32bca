package davserver

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/countproxy"
	"github.com/blindstore/blindstore/internal/proc"
	"github.com/blindstore/blindstore/internal/seeded"
)

// These tests serve an account of a real blindstored (through a proxy
// that counts the blocks sent and read) from this process, under the
// race detector: cmd/blind's tests drive the command with real clients.

var (
	buildOnce sync.Once
	serverBin string
	buildErr  error
)

func blindstored(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "davserver-test-")
		if err != nil {
			buildErr = err
			return
		}
		serverBin = filepath.Join(dir, "blindstored")
		if out, err := exec.Command("go", "build", "-o", serverBin, "../../cmd/blindstored").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build blindstored: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return serverBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if serverBin != "" {
		os.RemoveAll(filepath.Dir(serverBin))
	}
	os.Exit(code)
}

type fixture struct {
	*Server
	acc   *client.Account
	proxy *countproxy.Proxy
	url   string
}

func newFixture(t *testing.T, opts ...func(*Options)) *fixture {
	t.Helper()
	logs := &proc.Buffer{}
	cmd := exec.Command(blindstored(t), "serve", "--listen", "127.0.0.1:0", "--data", t.TempDir(), "--probe-burst", "10000", "--probe-rate", "1000")
	p, err := proc.Start(t.Context(), cmd, logs, 30*time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, logs)
	}
	t.Cleanup(func() { p.Kill() })
	px, err := countproxy.Start(p.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { px.Close() })
	remote, err := client.NewRemote(px.URL, http.DefaultClient)
	if err != nil {
		t.Fatal(err)
	}
	acc, _, err := client.Signup(t.Context(), remote, "dav", "correct horse battery staple", nil)
	if err != nil {
		t.Fatal(err)
	}
	opt := Options{User: "u", Password: "p"}
	for _, o := range opts {
		o(&opt)
	}
	srv, err := New(acc, opt)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &fixture{Server: srv, acc: acc, proxy: px, url: hs.URL}
}

func (f *fixture) do(t *testing.T, method, path string, body []byte, hdr ...string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, f.url+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("u", "p")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	io.ReadFull(seeded.Stream(seed), b)
	return b
}

// A range read fetches only the blocks holding it; a move sends no data;
// an edit sends only the chunks that changed.
func TestFSBlocks(t *testing.T) {
	f := newFixture(t)
	data := randomData(3<<20, 1)
	if code, _ := f.do(t, "PUT", "/big.bin", data); code != http.StatusCreated {
		t.Fatalf("PUT: %d", code)
	}
	file, err := f.acc.Lookup("big.bin")
	if err != nil {
		t.Fatal(err)
	}
	f.proxy.Take()
	code, got := f.do(t, "GET", "/big.bin", nil, "Range", "bytes=2000000-2000099")
	if code != http.StatusPartialContent || !bytes.Equal(got, data[2000000:2000100]) {
		t.Fatalf("range GET: %d, %d bytes", code, len(got))
	}
	// By GET, or by POST /v1/read where the server offers it (it does).
	if c := f.proxy.Take(); c.Reads+c.ReadMany < 1 || c.Reads+c.ReadMany > 2 {
		t.Errorf("a 100-byte range read %d blocks of the file's %d, want the one or two that hold it", c.Reads+c.ReadMany, len(file.Chunks))
	}

	if code, _ := f.do(t, "MKCOL", "/dir", nil); code != http.StatusCreated {
		t.Fatalf("MKCOL: %d", code)
	}
	f.FS().waitMarkers()
	f.proxy.Take()
	if code, _ := f.do(t, "MOVE", "/big.bin", nil, "Destination", f.url+"/dir/big.bin"); code != http.StatusCreated {
		t.Fatalf("MOVE: %d", code)
	}
	if c, idx := f.proxy.Take(), len(f.acc.IndexBlocks()); c.Batched > idx || c.Reads+c.ReadMany > 0 {
		t.Errorf("MOVE wrote %d blocks and read %d; the index is %d blocks: no data should move", c.Batched, c.Reads+c.ReadMany, idx)
	}

	edited := bytes.Clone(data)
	copy(edited[1500000:], "an edit in the middle")
	if code, _ := f.do(t, "PUT", "/dir/big.bin", edited); code != http.StatusCreated {
		t.Fatalf("PUT over: %d", code)
	}
	after, err := f.acc.Lookup("dir/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	changed := countproxy.NewChunks(file, after)
	c, idx := f.proxy.Take(), len(f.acc.IndexBlocks())
	if changed > 2 || c.Batched > changed+idx {
		t.Errorf("an edit of 21 bytes sent %d blocks (%d new chunks of %d, index %d blocks)", c.Batched, changed, len(after.Chunks), idx)
	}
	if code, got := f.do(t, "GET", "/dir/big.bin", nil); code != http.StatusOK || !bytes.Equal(got, edited) {
		t.Errorf("GET after the edit: %d, %d bytes", code, len(got))
	}
}

// Many clients at once: small PUTs commit in batches, large ones stream,
// folders are made, listed, moved and deleted meanwhile, and the index
// ends as a file system would.
func TestFSConcurrent(t *testing.T) {
	f := newFixture(t)
	for _, d := range []string{"/small", "/large", "/tmp"} {
		if code, _ := f.do(t, "MKCOL", d, nil); code != http.StatusCreated {
			t.Fatalf("MKCOL %s: %d", d, code)
		}
	}
	gen := f.acc.Generation()
	const small, large = 24, 3
	want := map[string][]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make(chan string, small+large+8)
	put := func(name string, data []byte) {
		defer wg.Done()
		if code, _ := f.do(t, "PUT", name, data); code != http.StatusCreated {
			errs <- fmt.Sprintf("PUT %s: %d", name, code)
		}
		mu.Lock()
		want[strings.TrimPrefix(name, "/")] = data
		mu.Unlock()
	}
	for i := range small {
		wg.Add(1)
		go put(fmt.Sprintf("/small/f%02d.txt", i), randomData(100+i*500, uint64(i)))
	}
	for i := range large {
		wg.Add(1)
		go put(fmt.Sprintf("/large/f%d.bin", i), randomData(600<<10+i, uint64(100+i)))
	}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if code, _ := f.do(t, "PROPFIND", "/", nil, "Depth", "1"); code != http.StatusMultiStatus {
				errs <- fmt.Sprintf("PROPFIND: %d", code)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		if code, _ := f.do(t, "MKCOL", "/tmp/sub", nil); code != http.StatusCreated {
			errs <- fmt.Sprintf("MKCOL /tmp/sub: %d", code)
		}
		if code, _ := f.do(t, "MOVE", "/tmp", nil, "Destination", f.url+"/moved"); code != http.StatusCreated {
			errs <- fmt.Sprintf("MOVE /tmp: %d", code)
		}
	}()
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if n := f.acc.Generation() - gen; n >= small+large {
		t.Errorf("%d index updates for %d files: small ones were not batched", n, small+large)
	}
	for name, data := range want {
		if code, got := f.do(t, "GET", "/"+name, nil); code != http.StatusOK || !bytes.Equal(got, data) {
			t.Errorf("GET %s: %d, %d bytes, want %d", name, code, len(got), len(data))
		}
	}
	code, body := f.do(t, "PROPFIND", "/", nil, "Depth", "1")
	for _, n := range []string{"/small/", "/large/", "/moved/"} {
		if code != http.StatusMultiStatus || !strings.Contains(string(body), "<D:href>"+n+"</D:href>") {
			t.Errorf("PROPFIND / does not list %s", n)
		}
	}
	if strings.Contains(string(body), "/tmp/") || strings.Contains(string(body), client.DirMarker) {
		t.Errorf("PROPFIND / lists the moved folder or a marker:\n%s", body)
	}
	if code, _ := f.do(t, "PROPFIND", "/moved/sub", nil, "Depth", "0"); code != http.StatusMultiStatus {
		t.Errorf("the moved empty folder: %d", code)
	}
	if code, _ := f.do(t, "DELETE", "/small", nil); code != http.StatusNoContent {
		t.Errorf("DELETE /small: %d", code)
	}
	for _, file := range f.acc.Files() {
		if strings.HasPrefix(file.Name, "small/") {
			t.Errorf("%s left after deleting its folder", file.Name)
		}
	}
}
