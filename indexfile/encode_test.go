package indexfile

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/goldenfile"
	"github.com/blindstore/blindstore/internal/seeded"
)

const (
	goldenBody    = "testdata/index-v1.body"
	goldenEncoded = "testdata/index-v1.bin"
)

// compress builds an encoding around a hand-made body.
func compress(t testing.TB, version byte, body []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(version)
	w, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestGoldenBody pins the uncompressed body: if this fails, the format
// changed and needs a new version, not a new golden file.
func TestGoldenBody(t *testing.T) {
	x := fixture()
	body := encodeBody(x)
	golden := goldenfile.Read(t, goldenBody, body)
	if !bytes.Equal(body, golden) {
		t.Fatalf("encoding of the fixture drifted from %s", goldenBody)
	}
	// The first bytes, checked by hand: generation 42, then 5 files, then
	// the first name.
	want := []byte{0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 5, 0, 5, 'a', '.', 't', 'x', 't'}
	if !bytes.HasPrefix(golden, want) {
		t.Fatalf("golden body starts % x, want % x", golden[:len(want)], want)
	}
}

// TestGoldenDecode checks that the committed encoding still decodes to
// the fixture. The DEFLATE stream Encode writes may change between Go
// releases, so the encoding is compared through Decode, not byte by byte.
func TestGoldenDecode(t *testing.T) {
	enc, err := Encode(fixture())
	if err != nil {
		t.Fatal(err)
	}
	golden := goldenfile.Read(t, goldenEncoded, enc)
	if golden[0] != Version {
		t.Fatalf("golden version byte = %d", golden[0])
	}
	got, err := Decode(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, fixture()) {
		t.Fatalf("golden encoding decodes to\n%+v\nwant\n%+v", got, fixture())
	}
}

func TestRoundTrip(t *testing.T) {
	unsorted := fixture()
	unsorted.Files[0], unsorted.Files[4] = unsorted.Files[4], unsorted.Files[0]
	many := &Index{Generation: 1 << 40}
	for i := range 2000 {
		name := strings.Repeat("d/", i%7) + "f" + string(rune('a'+i%26)) + time.Duration(i).String()
		many.Files = append(many.Files, file(name, t0.Add(time.Duration(i)*time.Second), uint32(i%5+1)*1000, 7))
	}
	many.Files = sortedCopy(many.Files)
	for name, x := range map[string]*Index{
		"empty":    {},
		"fixture":  fixture(),
		"unsorted": unsorted,
		"many":     many,
	} {
		t.Run(name, func(t *testing.T) {
			enc, err := Encode(x)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(enc)
			if err != nil {
				t.Fatal(err)
			}
			want := &Index{Generation: x.Generation, Files: sortedCopy(x.Files)}
			if len(want.Files) == 0 {
				want.Files = []File{}
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip changed the index")
			}
		})
	}
}

func TestEncodeCompresses(t *testing.T) {
	x := fixture()
	enc, err := Encode(x)
	if err != nil {
		t.Fatal(err)
	}
	body := encodeBody(x)
	if len(enc) >= len(body) {
		t.Fatalf("encoding of %d bytes is not smaller than its body of %d", len(enc), len(body))
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	x := fixture()
	x.Files[1].Name = "../escape"
	if _, err := Encode(x); !errors.Is(err, ErrBadName) {
		t.Fatalf("Encode of a traversing name: %v, want ErrBadName", err)
	}
}

// bodyWith returns the fixture's body after mutate changed the fixture,
// bypassing validation, as a hostile or buggy writer would.
func bodyWith(mutate func(x *Index)) []byte {
	x := fixture()
	mutate(x)
	return encodeBody(x)
}

func TestDecodeRefuses(t *testing.T) {
	good := encodeBody(fixture())
	goodEnc := compress(t, Version, good)
	setU32 := func(b []byte, off int, v uint32) []byte {
		b = bytes.Clone(b)
		binary.BigEndian.PutUint32(b[off:], v)
		return b
	}
	// Offsets in the body of the first file ("a.txt", 1 chunk).
	const (
		fileCountOff = 8
		firstFile    = 12
		nsecOff      = firstFile + 2 + 5 + 8 + 4 + 8
		chunkCntOff  = nsecOff + 4 + 8 + 32 + 32
	)
	type tc struct {
		name string
		enc  []byte
		want error
		why  string // in the message, so each case fails for its own reason
	}
	cases := []tc{
		{"empty input", nil, ErrCorrupt, "empty"},
		{"version 0", compress(t, 0, good), ErrVersion, "version: 0"},
		{"version 2", compress(t, 2, good), ErrVersion, "version: 2"},
		{"truncated stream", goodEnc[:len(goodEnc)-3], ErrCorrupt, "unexpected EOF"},
		{"only a version byte", []byte{Version}, ErrCorrupt, "unexpected EOF"},
		{"bytes after the stream", append(bytes.Clone(goodEnc), 0), ErrCorrupt, "after the compressed stream"},
		{"truncated body", compress(t, Version, good[:len(good)-1]), ErrCorrupt, "truncated"},
		{"bytes after the body", compress(t, Version, append(bytes.Clone(good), 0)), ErrCorrupt, "after the last file"},
		{"file count beyond the input", compress(t, Version, setU32(good, fileCountOff, 1<<32-1)), ErrCorrupt, "count exceeds"},
		{"file count one too many", compress(t, Version, setU32(good, fileCountOff, 6)), ErrCorrupt, "truncated"},
		{"chunk count beyond the input", compress(t, Version, setU32(good, chunkCntOff, 1<<30)), ErrCorrupt, "count exceeds"},
		{"nanoseconds out of range", compress(t, Version, setU32(good, nsecOff, 1e9)), ErrCorrupt, "nanoseconds"},
		{"unsorted", compress(t, Version, bodyWith(func(x *Index) { x.Files[0], x.Files[1] = x.Files[1], x.Files[0] })), ErrCorrupt, "not sorted"},
		{"duplicate name", compress(t, Version, bodyWith(func(x *Index) { x.Files[1] = x.Files[0] })), ErrDuplicate, "duplicate"},
		{"file is a directory", compress(t, Version, bodyWith(func(x *Index) { x.Files[2].Name = "docs" })), ErrCorrupt, "both a file and a directory"},
		{"setuid mode", compress(t, Version, bodyWith(func(x *Index) { x.Files[0].Mode = 0o4755 })), ErrCorrupt, "permission bits"},
		{"directory mode", compress(t, Version, bodyWith(func(x *Index) { x.Files[0].Mode = fs.ModeDir | 0o755 })), ErrCorrupt, "permission bits"},
		{"size mismatch", compress(t, Version, bodyWith(func(x *Index) { x.Files[0].Size++ })), ErrCorrupt, "chunks hold 11 bytes, file size is 12"},
		{"zero file key", compress(t, Version, bodyWith(func(x *Index) { x.Files[0].Key = [32]byte{} })), ErrCorrupt, "key is zero"},
		{"empty chunk", compress(t, Version, bodyWith(func(x *Index) {
			x.Files[0].Chunks = append(x.Files[0].Chunks, Chunk{Ref: Ref{ID: seeded.BlockID("z")}})
		})), ErrCorrupt, "empty chunk"},
		{"chunk id not v4", compress(t, Version, bodyWith(func(x *Index) { x.Files[0].Chunks[0].ID[6] = 0x11 })), ErrCorrupt, "chunk id"},
		{"manifest id not v4", compress(t, Version, bodyWith(func(x *Index) { x.Files[3].Manifest[0].ID[8] = 0 })), ErrCorrupt, "manifest id"},
	}
	for _, name := range []string{"", "/etc/passwd", "../up", "a/../../b", "a/./b", "a//b", "a/", ".", "..", "a\x00b", "bad\xffutf8", `a\..\b`, "line\nbreak", "esc\x1b[2J", strings.Repeat("x", MaxNameLen+1)} {
		cases = append(cases, tc{"name " + strings.ToValidUTF8(name[:min(len(name), 20)], "?"),
			compress(t, Version, bodyWith(func(x *Index) { x.Files[0].Name = name })), ErrBadName, "bad file name"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			x, err := Decode(c.enc)
			if err == nil {
				t.Fatalf("decoded %+v, want an error", x)
			}
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.why) {
				t.Fatalf("err = %v, want %v about %q", err, c.want, c.why)
			}
		})
	}
	// The untouched fixture decodes, so each case fails for its own reason.
	if _, err := Decode(goodEnc); err != nil {
		t.Fatal(err)
	}
}

// TestDecodeBoundsInflation feeds a tiny stream that inflates far beyond
// the limit: Decode must stop at the limit, not allocate what it inflates.
func TestDecodeBoundsInflation(t *testing.T) {
	bomb := compress(t, Version, make([]byte, 8<<20))
	if len(bomb) > 16<<10 {
		t.Fatalf("test bomb is %d bytes, not a bomb", len(bomb))
	}
	if _, err := decode(bomb, 1<<20); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "inflates beyond") {
		t.Fatalf("err = %v, want an inflation error", err)
	}
	// Under the real limit the same stream is a body full of zeros that
	// claims no files and then has bytes left over.
	if _, err := Decode(bomb); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want ErrCorrupt", err)
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"a", "a.txt", "dir/sub/file", "...", "a..b", ".hidden", "naïve/日本語", "with space", strings.Repeat("x", MaxNameLen)} {
		if err := ValidName(ok); err != nil {
			t.Errorf("ValidName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "/", "/a", "a/", "a//b", "./a", "a/.", "../a", "a/..", "a/../b", "a\x00", "a\\b", "\x7f", "\t", "\xc3", strings.Repeat("x", MaxNameLen+1)} {
		if err := ValidName(bad); !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q) = %v, want ErrBadName", bad, err)
		}
	}
}

func TestPutRemoveRename(t *testing.T) {
	x := &Index{}
	for _, n := range []string{"b", "a-x", "c/d", "a/b"} {
		if err := x.Put(file(n, t0, 1)); err != nil {
			t.Fatalf("Put(%q): %v", n, err)
		}
	}
	if err := x.Validate(); err != nil {
		t.Fatal(err)
	}
	names := func() []string {
		var s []string
		for _, f := range x.Files {
			s = append(s, f.Name)
		}
		return s
	}
	if got, want := names(), []string{"a-x", "a/b", "b", "c/d"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("names = %q, want %q", got, want)
	}
	// "a" would be a file and the directory of "a/b"; "b/c" would put a
	// file under the file "b". The sorted neighbour "a-x" must not hide "a/b".
	for _, n := range []string{"a", "b/c"} {
		if err := x.Put(file(n, t0, 1)); !errors.Is(err, ErrBadName) {
			t.Fatalf("Put(%q) = %v, want ErrBadName", n, err)
		}
	}
	replaced := file("b", t0.Add(time.Minute), 9)
	if err := x.Put(replaced); err != nil {
		t.Fatal(err)
	}
	if f := x.Lookup("b"); f == nil || f.Size != 9 {
		t.Fatalf("Lookup(b) = %+v after replacing it", f)
	}
	if err := x.Rename("b", "c/e"); err != nil {
		t.Fatal(err)
	}
	if x.Lookup("b") != nil || x.Lookup("c/e") == nil || x.Lookup("c/e").Size != 9 {
		t.Fatal("Rename did not move the file")
	}
	if err := x.Rename("c/e", "c/d"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("Rename onto an existing name: %v", err)
	}
	if err := x.Rename("c/e", "c/d/x"); !errors.Is(err, ErrBadName) {
		t.Fatalf("Rename under a file: %v", err)
	}
	if x.Lookup("c/e") == nil {
		t.Fatal("a refused Rename lost the file")
	}
	if !x.Remove("a/b") || x.Remove("a/b") {
		t.Fatal("Remove reported wrongly")
	}
	if got, want := names(), []string{"a-x", "c/d", "c/e"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("names = %q, want %q", got, want)
	}
	if err := x.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnreferenced(t *testing.T) {
	old := fixture()
	cur := old.Clone()
	// Drop a file, and let another keep one chunk of it (as a merge of a
	// rename and an edit can).
	gone := *cur.Lookup("docs/report.pdf")
	kept := gone.Chunks[1]
	cur.Remove("docs/report.pdf")
	a := cur.Lookup("a.txt")
	a.Chunks = append(a.Chunks, kept)
	a.Size += uint64(kept.Size)
	if err := cur.Validate(); err != nil {
		t.Fatal(err)
	}
	got := Unreferenced(old, cur)
	want := map[Ref]bool{gone.Chunks[0].Ref: true, gone.Chunks[2].Ref: true, gone.Manifest[0]: true}
	if len(got) != len(want) {
		t.Fatalf("Unreferenced = %d refs, want %d", len(got), len(want))
	}
	for _, r := range got {
		if !want[r] {
			t.Fatalf("Unreferenced returned a block still in use or never dropped")
		}
	}
	if len(Unreferenced(cur, cur)) != 0 {
		t.Fatal("an index has unreferenced blocks relative to itself")
	}
}
