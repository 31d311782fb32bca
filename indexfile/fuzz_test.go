package indexfile

import (
	"bytes"
	"compress/flate"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

func addSeeds(f *testing.F, bodies bool) {
	x := fixture()
	body := encodeBody(x)
	one := &Index{Generation: 1, Files: []File{file("f", t0, 3)}}
	for _, b := range [][]byte{body, encodeBody(one), encodeBody(&Index{}), body[:len(body)/2]} {
		if bodies {
			f.Add(b)
		} else {
			f.Add(compress(f, Version, b))
		}
	}
	if !bodies {
		if golden, err := os.ReadFile(goldenEncoded); err == nil {
			f.Add(golden)
		}
		f.Add([]byte{})
		f.Add([]byte{Version})
		f.Add([]byte{Version, 1, 0, 0, 0xff, 0xff})
	}
}

// checkDecoded holds for every index Decode accepts: its body is the
// canonical one (no two encodings' bodies decode alike) and it survives
// a round trip unchanged.
func checkDecoded(t *testing.T, x *Index, body []byte) {
	if !bytes.Equal(encodeBody(x), body) {
		t.Fatalf("accepted a body that is not the canonical encoding of what it decodes to")
	}
	enc, err := Encode(x)
	if err != nil {
		t.Fatalf("Encode refuses what Decode accepted: %v", err)
	}
	y, err := Decode(enc)
	if err != nil {
		t.Fatalf("Decode refuses what Encode wrote: %v", err)
	}
	if len(x.Files) == 0 {
		x.Files, y.Files = nil, nil
	}
	if !reflect.DeepEqual(x, y) {
		t.Fatalf("round trip changed the index")
	}
}

// FuzzDecode feeds arbitrary encodings to Decode: it must never panic nor
// allocate beyond what its input pays for, and what it accepts must be
// canonical.
func FuzzDecode(f *testing.F) {
	addSeeds(f, false)
	f.Fuzz(func(t *testing.T, enc []byte) {
		x, err := decode(enc, 1<<22)
		if err != nil {
			return
		}
		body, err := io.ReadAll(flate.NewReader(bytes.NewReader(enc[1:])))
		if err != nil {
			t.Fatalf("accepted a stream that does not inflate: %v", err)
		}
		checkDecoded(t, x, body)
	})
}

// FuzzDecodeBody reaches the body parser directly, which random bytes
// behind a DEFLATE header rarely do.
func FuzzDecodeBody(f *testing.F) {
	addSeeds(f, true)
	f.Fuzz(func(t *testing.T, body []byte) {
		x, err := decodeBody(body)
		if err != nil {
			return
		}
		checkDecoded(t, x, body)
	})
}

// FuzzValidName: every name ValidName accepts is local on this system
// (no way out of the folder it is written into), already clean, free of
// NUL, and has a valid conflict name; and a file by that name survives
// the round trip.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../a", "a/..", "/a", "a\x00", ".bashrc", "dir/report.pdf", "é/" + strings.Repeat("x", 300), strings.Repeat("d/", 2040) + "f.txt"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		if !filepath.IsLocal(name) || path.Clean(name) != name || strings.ContainsRune(name, 0) || !utf8.ValidString(name) {
			t.Fatalf("ValidName accepted %q", name)
		}
		taken := map[string]struct{}{name: {}}
		c := conflictName(name, t0, taken)
		if err := ValidName(c); err != nil {
			t.Fatalf("conflict name %q of %q: %v", c, name, err)
		}
		if _, ok := taken[c]; ok {
			t.Fatalf("conflict name %q is taken", c)
		}
		x := &Index{}
		if err := x.Put(file(name, t0, 1)); err != nil {
			t.Fatal(err)
		}
		enc, err := Encode(x)
		if err != nil {
			t.Fatal(err)
		}
		y, err := Decode(enc)
		if err != nil || y.Files[0].Name != name {
			t.Fatalf("round trip of %q: %v", name, err)
		}
	})
}
