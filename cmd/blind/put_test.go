package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

// countBlocks stops the server, counts its store's blocks, and starts
// it again on the same data; u logs in again, since the address changed.
func countBlocks(t *testing.T, srv **server, u *user, data string, args ...string) int64 {
	t.Helper()
	stopServer(*srv)
	n := storeBlocks(t, data)
	*srv = startServer(t, args...)
	u.server = (*srv).url
	u.must("logout")
	u.must("login", "--user", u.name)
	return n
}

// sentProxy forwards to a server and counts the block bytes clients
// send in writes (PUT and batch POST), so a test can say how many blocks
// a command sent.
type sentProxy struct {
	url   string
	bytes atomic.Int64
}

func newSentProxy(t *testing.T, upstream string) *sentProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	p := &sentProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method == http.MethodPut || r.Method == http.MethodPost) && strings.HasPrefix(r.URL.Path, "/v1/blocks") {
			p.bytes.Add(max(r.ContentLength, 0))
		}
		rp.ServeHTTP(w, r)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	p.url = "http://" + ln.Addr().String()
	return p
}

// blocks returns the blocks sent since the last call.
func (p *sentProxy) blocks() int64 { return p.bytes.Swap(0) / 65536 }

// blind put of a folder stores every file under FOLDER/PATH in a few
// index updates; a folder of small files costs few blocks; get --offset
// --length returns exactly the range; an edit in the middle of a large
// file re-sends only a few blocks. All through real processes, counted
// by the server.
func TestPutFolderRangesAndDeltas(t *testing.T) {
	data := t.TempDir()
	args := []string{"--data", data}
	srv := startServer(t, args...)
	u := newUser(t, srv.url, "fay")
	u.signup()
	empty := countBlocks(t, &srv, u, data, args...)

	dir := filepath.Join(t.TempDir(), "notes")
	const n = 2000
	for i := range n {
		writeFile(t, dir, fmt.Sprintf("d%02d/n%04d.txt", i%20, i), strings.Repeat(fmt.Sprintf("note %d ", i), 1024/6)[:1024])
	}
	r := u.must("put", dir)
	if !strings.Contains(r.stdout, fmt.Sprintf("stored %d files", n)) {
		t.Fatalf("put of a folder said %q", r.stdout)
	}
	blocks := countBlocks(t, &srv, u, data, args...) - empty
	t.Logf("%d files of 1 KiB: %d blocks in all, index included", n, blocks)
	if blocks > n/25 { // the target: 10,000 files in at most 400 blocks
		t.Fatalf("%d files of 1 KiB took %d blocks", n, blocks)
	}
	var files []map[string]any
	if err := lsFiles(u.must("--json", "ls").stdout, &files); err != nil || len(files) != n {
		t.Fatalf("ls: %d files, %v", len(files), err)
	}
	got := filepath.Join(t.TempDir(), "one")
	u.must("get", "notes/d07/n0007.txt", "-o", got)
	if b, _ := os.ReadFile(got); !bytes.HasPrefix(b, []byte("note 7 note 7")) || len(b) != 1024 {
		t.Fatalf("a file of the folder came back as %q", b)
	}

	// A large file, then ranges of it.
	src := filepath.Join(t.TempDir(), "big")
	writeRandom(t, src, 40*capacity, 9)
	u.must("put", src)
	whole, _ := os.ReadFile(src)
	for _, rg := range [][2]int{{0, 10}, {capacity - 5, 10}, {17 * capacity, 3 * capacity}, {len(whole) - 4, 100}, {len(whole) + 10, 5}} {
		var out bytes.Buffer
		res := u.runIn("", nil, &out, "get", "big", "-o", "-", "--offset", strconv.Itoa(rg[0]), "--length", strconv.Itoa(rg[1]))
		if res.code != 0 {
			t.Fatalf("range %v: exit %d: %s", rg, res.code, res.stderr)
		}
		lo, hi := min(rg[0], len(whole)), min(rg[0]+rg[1], len(whole))
		if !bytes.Equal(out.Bytes(), whole[lo:hi]) {
			t.Fatalf("range %v: %d bytes, want %d", rg, out.Len(), hi-lo)
		}
	}
	u.expect(wire.ExitUsage, nil, "get", "big", "--offset", "-1")

	// A 100-byte insertion in the middle re-sends a few blocks, and a
	// one-byte overwrite fewer: counted as block bytes sent, through a
	// proxy. Each put also writes the head and an index leaf and dir.
	proxy := newSentProxy(t, srv.url)
	u.server = proxy.url
	u.must("logout")
	u.must("login", "--user", u.name)
	proxy.blocks()
	mid := len(whole) / 2
	edited := append(append(append([]byte{}, whole[:mid]...), bytes.Repeat([]byte("+"), 100)...), whole[mid:]...)
	if err := os.WriteFile(src, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	u.must("put", src)
	sent := proxy.blocks()
	edited[len(edited)/3] ^= 1
	if err := os.WriteFile(src, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	u.must("put", src)
	sent1 := proxy.blocks()
	t.Logf("100-byte insertion: %d blocks sent; one-byte overwrite: %d (each with the head and 2 index blocks)", sent, sent1)
	if sent > 4+3 || sent1 > 2+3 {
		t.Fatalf("edits sent %d and %d blocks", sent, sent1)
	}
	check := filepath.Join(t.TempDir(), "check")
	u.must("get", "big", "-o", check)
	if b, _ := os.ReadFile(check); !bytes.Equal(b, edited) {
		t.Fatal("the edited file came back different")
	}

	// Bad input: one line, non-zero, nothing stored.
	u.expect(wire.ExitUsage, nil, "put", dir, src, "--as", "x")
	u.expect(wire.ExitUsage, nil, "put", src, filepath.Join(filepath.Dir(src), "..", filepath.Base(filepath.Dir(src)), "big"))
	u.expect(wire.ExitLocalIO, nil, "put", src, filepath.Join(t.TempDir(), "missing"))
	var after []map[string]any
	_ = lsFiles(u.must("--json", "ls").stdout, &after)
	if len(after) != n+1 {
		t.Fatalf("bad puts changed the account: %d files", len(after))
	}
}
