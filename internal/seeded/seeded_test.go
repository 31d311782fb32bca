package seeded

import (
	"bytes"
	"encoding/hex"
	"io"
	"testing"
)

// The data is what golden files were made of: it must not change.
func TestBytesArePinned(t *testing.T) {
	if got := hex.EncodeToString(Bytes(1, 16)); got != pinnedBytes1 {
		t.Fatalf("Bytes(1, 16) = %s, want %s", got, pinnedBytes1)
	}
	if bytes.Equal(Bytes(1, 64), Bytes(2, 64)) || bytes.Equal(Bytes(1, 64), Bytes(257, 64)) {
		t.Fatal("two seeds give the same bytes")
	}
	long := Bytes(7, 5000)
	if !bytes.Equal(long[:100], Bytes(7, 100)) {
		t.Fatal("a shorter draw of a seed is not a prefix of a longer one")
	}
	var fromStream [5000]byte
	if _, err := io.ReadFull(Stream(7), fromStream[:]); err != nil || !bytes.Equal(fromStream[:], long) {
		t.Fatalf("Stream and Bytes differ (%v)", err)
	}
}

func TestBlockIDIsPinnedVersion4(t *testing.T) {
	id := BlockID("a")
	if got := id.String(); got != pinnedIDa {
		t.Fatalf("BlockID(a) = %s, want %s", got, pinnedIDa)
	}
	for _, seed := range []string{"a", "b", "i0", ""} {
		id := BlockID(seed)
		if id[6]>>4 != 4 || id[8]>>6 != 2 {
			t.Fatalf("BlockID(%q) = %s: not a version 4 UUID", seed, id)
		}
	}
	if BlockID("a") == BlockID("b") {
		t.Fatal("two seeds give one ID")
	}
}

// What the packages' own copies of these helpers gave before they were
// made one (the golden files of indexfile and client/format hold them).
const (
	pinnedBytes1 = "6ae6783f4fbde91b6eb88b73a48ed247"
	pinnedIDa    = "85a0aaf3-8942-4026-b267-83df3f9d08f2"
)
