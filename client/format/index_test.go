package format

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/goldenfile"
	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/indexfile"
)

// fixtureIndex is large enough (about 4 KB of hashes, which do not
// compress) to span several 1 KiB blocks.
func fixtureIndex() *indexfile.Index {
	x := &indexfile.Index{Generation: 9}
	mtime := time.Date(2025, 6, 1, 12, 0, 0, 123, time.UTC)
	for i := range 12 {
		name := fmt.Sprintf("photos/%02d.jpg", i)
		f := indexfile.File{
			Name: name, Mode: 0o640, ModTime: mtime.Add(time.Duration(i) * time.Minute),
			Hash: sha256.Sum256([]byte("hash " + name)), Key: sha256.Sum256([]byte("key " + name)), Renewed: 680,
		}
		for j := range 3 {
			seed := fmt.Sprintf("%s/%d", name, j)
			f.Chunks = append(f.Chunks, indexfile.Chunk{
				Ref:  indexfile.Ref{ID: seeded.BlockID(seed), ETag: wire.ETagOf([]byte(seed))},
				Size: 60000, Hash: sha256.Sum256([]byte(seed)),
			})
			f.Size += 60000
		}
		if err := x.Put(f); err != nil {
			panic(err)
		}
	}
	return x
}

func splitBlocks(b []byte, bs int) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		out = append(out, b[:bs])
		b = b[bs:]
	}
	return out
}

// TestIndexGolden pins the encryption of the index. The committed blocks must
// open to the fixture (the decoding and decryption have not drifted), and
// encrypting the same encoded bytes with the same random stream must give
// the same blocks (the encryption has not drifted). Encode's DEFLATE
// stream itself is free to change between Go releases, so it is taken
// from the golden blocks rather than recomputed.
func TestIndexGolden(t *testing.T) {
	base := &Root{AccountKey: testKey("golden account"), OwnerSecret: OwnerSecret(testKey("golden owner"))}
	var cat, rootBytes []byte
	if goldenfile.Update() {
		enc, err := indexfile.Encode(fixtureIndex())
		if err != nil {
			t.Fatal(err)
		}
		encrypted, root, err := base.encryptIndex(enc, smallBlock, deterministic("index"))
		if err != nil {
			t.Fatal(err)
		}
		for _, b := range encrypted {
			cat = append(cat, b.Data...)
		}
		if rootBytes, err = MarshalRoot(root); err != nil {
			t.Fatal(err)
		}
	}
	goldenBlocks := goldenfile.Read(t, "testdata/index-v1.encrypted", cat)
	goldenRoot, err := UnmarshalRoot(goldenfile.Read(t, "testdata/index-v1.root", rootBytes))
	if err != nil {
		t.Fatal(err)
	}
	blocks := splitBlocks(goldenBlocks, smallBlock)
	if len(blocks) < 4 {
		t.Fatalf("golden index spans %d blocks; the fixture should need several", len(blocks))
	}

	got, err := goldenRoot.DecryptIndex(blocks, smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, fixtureIndex()) {
		t.Fatal("golden index blocks open to another index")
	}

	encoded, err := goldenRoot.decryptIndex(blocks, smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	again, root, err := base.encryptIndex(encoded, smallBlock, deterministic("index"))
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(blocks) {
		t.Fatalf("re-encrypting gives %d blocks, golden has %d", len(again), len(blocks))
	}
	for i := range again {
		if !bytes.Equal(again[i].Data, blocks[i]) {
			t.Fatalf("index block %d drifted from testdata/index-v1.encrypted", i)
		}
	}
	if root.AccountKey != base.AccountKey || !reflect.DeepEqual(root.Index, goldenRoot.Index) || root.IndexLen != goldenRoot.IndexLen {
		t.Fatal("re-encrypting gives another root")
	}
}

func TestIndexRoundTrip(t *testing.T) {
	root, err := NewRoot()
	if err != nil {
		t.Fatal(err)
	}
	empty, err := root.DecryptIndex(nil, smallBlock)
	if err != nil || len(empty.Files) != 0 {
		t.Fatalf("a new account's index: %+v, %v", empty, err)
	}

	idx := fixtureIndex()
	encrypted, next, err := root.EncryptIndex(idx, smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Index) != 0 || root.IndexLen != 0 {
		t.Fatal("EncryptIndex changed the current root")
	}
	if next.AccountKey != root.AccountKey || next.OwnerSecret != root.OwnerSecret {
		t.Fatal("the next root has other secrets")
	}
	enc, _ := indexfile.Encode(idx)
	if next.IndexLen != uint64(len(enc)) || len(next.Index) != len(encrypted) {
		t.Fatalf("next root: length %d (encoded %d), %d refs for %d blocks", next.IndexLen, len(enc), len(next.Index), len(encrypted))
	}
	if want, _ := indexfile.PaddedBlocks(len(enc), PayloadCapacity(smallBlock)); len(encrypted) != want {
		t.Fatalf("%d index blocks, want %d", len(encrypted), want)
	}
	data := make([][]byte, len(encrypted))
	for i, b := range encrypted {
		if len(b.Data) != smallBlock || b.ETag != wire.ETagOf(b.Data) || next.Index[i] != (indexfile.Ref{ID: b.ID, ETag: b.ETag}) {
			t.Fatalf("encrypted block %d is inconsistent", i)
		}
		if err := b.ID.Validate(); err != nil {
			t.Fatal(err)
		}
		data[i] = b.Data
	}
	got, err := next.DecryptIndex(data, smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, idx) {
		t.Fatal("index round trip changed it")
	}
	// The root survives marshalling with its index list.
	p, _ := MarshalRoot(next)
	if r2, err := UnmarshalRoot(p); err != nil || !reflect.DeepEqual(r2, next) {
		t.Fatalf("next root does not round-trip: %v", err)
	}

	// Another encryption of the same index shares nothing visible.
	encrypted2, _, err := root.EncryptIndex(idx, smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	if encrypted2[0].ID == encrypted[0].ID || encrypted2[0].ETag == encrypted[0].ETag {
		t.Fatal("two encryptions of one index share ids or ETags")
	}
}

func TestDecryptIndexRefuses(t *testing.T) {
	root, err := NewRoot()
	if err != nil {
		t.Fatal(err)
	}
	encrypted, next, err := root.EncryptIndex(fixtureIndex(), smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	data := func() [][]byte {
		d := make([][]byte, len(encrypted))
		for i, b := range encrypted {
			d[i] = bytes.Clone(b.Data)
		}
		return d
	}

	if _, err := next.DecryptIndex(data()[1:], smallBlock); err == nil {
		t.Error("a missing block accepted")
	}
	swapped := data()
	swapped[0], swapped[1] = swapped[1], swapped[0]
	if _, err := next.DecryptIndex(swapped, smallBlock); !errors.Is(err, ErrTampered) {
		t.Errorf("blocks in another order: %v", err)
	}
	// A server that rolls one block back to a different, validly encrypted
	// version under the same id: the ETag in the root catches it.
	old, err := Encrypt(root.AccountKey, encrypted[0].ID, []byte("an older version"), smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	rolled := data()
	rolled[0] = old
	if _, err := next.DecryptIndex(rolled, smallBlock); !errors.Is(err, ErrTampered) {
		t.Errorf("a rolled-back block: %v", err)
	}
	// Under another account's key the same blocks do not open.
	other := *next
	other.AccountKey = testKey("someone else")
	if _, err := other.DecryptIndex(data(), smallBlock); !errors.Is(err, ErrTampered) {
		t.Errorf("another account key: %v", err)
	}
	// A root claiming more bytes than its blocks hold, or a length that
	// cuts into the encoding.
	long := *next
	long.IndexLen = uint64(len(encrypted)*PayloadCapacity(smallBlock) + 1)
	if _, err := long.DecryptIndex(data(), smallBlock); err == nil {
		t.Error("an index length beyond its blocks accepted")
	}
	short := *next
	short.IndexLen--
	if _, err := short.DecryptIndex(data(), smallBlock); !errors.Is(err, indexfile.ErrCorrupt) {
		t.Errorf("a cut encoding: %v", err)
	}
	if _, err := next.DecryptIndex(data(), smallBlock); err != nil {
		t.Fatalf("the untouched blocks: %v", err)
	}
}
