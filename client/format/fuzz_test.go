package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/seeded"
)

// FuzzDecryptBlock has two halves. As a block (asFrame false), the input is
// what a hostile server returns: Decrypt must refuse it with ErrBlockSize or
// ErrTampered, unless it is a genuine block. As a frame (asFrame true),
// the input is what a faulty writer holding the key encrypted: Decrypt must
// return exactly the payload its length field names, or ErrBadFrame.
// Neither may panic.
func FuzzDecryptBlock(f *testing.F) {
	key, id := testKey("golden block key"), seeded.BlockID("fuzz")
	if golden, err := os.ReadFile("testdata/block-v1.golden"); err == nil {
		f.Add(golden, false)
	}
	valid, err := Encrypt(key, id, []byte("a valid block"), smallBlock)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid, false)
	f.Add(valid[:100], false)
	f.Add([]byte{}, false)
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'}, true)
	f.Add([]byte{0, 0, 3, 0xd4, 'x'}, true) // the largest valid length
	f.Add([]byte{0, 0, 3, 0xd5}, true)      // one past it
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, true)
	f.Add([]byte{0, 0, 0, 0, 0, 1}, true) // dirty padding

	frameLen := smallBlock - NonceSize - TagSize
	f.Fuzz(func(t *testing.T, in []byte, asFrame bool) {
		if !asFrame {
			p, err := Decrypt(key, id, in, smallBlock)
			switch {
			case err == nil:
				// Only a block encrypted under this key and id opens, and
				// then it is exactly the encryption of its payload.
				var nonce [NonceSize]byte
				copy(nonce[:], in)
				again, err := encryptWithNonce(key, id, p, smallBlock, &nonce)
				if err != nil || !bytes.Equal(again, in) {
					t.Fatalf("opened a block that is not the encryption of its payload")
				}
			case errors.Is(err, ErrBlockSize) && len(in) != smallBlock:
			case errors.Is(err, ErrTampered) && len(in) == smallBlock:
			default:
				t.Fatalf("Open of %d bytes: %v", len(in), err)
			}
			return
		}
		frame := make([]byte, frameLen)
		copy(frame, in)
		p, err := Decrypt(key, id, encryptRawFrame(key, id, frame, smallBlock), smallBlock)
		n := uint64(binary.BigEndian.Uint32(frame))
		ok := n <= uint64(frameLen-LengthSize) && !bytes.ContainsFunc(frame[LengthSize+n:], func(r rune) bool { return r != 0 })
		switch {
		case ok && err == nil:
			if !bytes.Equal(p, frame[LengthSize:LengthSize+n]) {
				t.Fatalf("payload differs from the frame's")
			}
			if cap(p) != len(p) {
				t.Fatalf("payload of %d bytes exposes %d bytes of capacity", len(p), cap(p))
			}
		case !ok && errors.Is(err, ErrBadFrame):
		default:
			t.Fatalf("frame with length %d: valid=%v, Open err %v", n, ok, err)
		}
	})
}

// FuzzRootUnmarshal: UnmarshalRoot never panics, and what it accepts is
// canonical: marshalling it again gives the same bytes.
func FuzzRootUnmarshal(f *testing.F) {
	good, err := MarshalRoot(fixtureRoot())
	if err != nil {
		f.Fatal(err)
	}
	empty, err := MarshalRoot(&Root{AccountKey: testKey("a"), OwnerSecret: OwnerSecret(testKey("o"))})
	if err != nil {
		f.Fatal(err)
	}
	if b, err := os.ReadFile("testdata/index-v1.root"); err == nil {
		f.Add(b)
	}
	f.Add(good)
	f.Add(empty)
	f.Add(good[:len(good)-1])
	f.Add([]byte{})
	f.Add([]byte{RootVersion})
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := UnmarshalRoot(in)
		if err != nil {
			if !errors.Is(err, ErrBadRoot) {
				t.Fatalf("error outside ErrBadRoot: %v", err)
			}
			return
		}
		out, err := MarshalRoot(r)
		if err != nil {
			t.Fatalf("MarshalRoot refuses what UnmarshalRoot accepted: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted a root that is not canonical")
		}
	})
}

// FuzzUnmarshalHead: a head payload that decodes is valid and canonical.
func FuzzUnmarshalHead(f *testing.F) {
	h := &Head{Generation: 7, Roots: []RootRef{{Kind: RootPassword, ID: seeded.BlockID("r1")}, {Kind: RootRecovery, ID: seeded.BlockID("r2")}}}
	h.Index = []indexfile.Ref{{ID: seeded.BlockID("i1")}, {ID: seeded.BlockID("i2")}}
	if b, err := MarshalHead(h); err == nil {
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	v1 := &Head{Version: 1, Generation: 1, IndexLen: 100, Index: []indexfile.Ref{{ID: seeded.BlockID("i")}}, Roots: []RootRef{{Kind: RootPassword, ID: seeded.BlockID("r")}}}
	if b, err := MarshalHead(v1); err == nil {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{HeadVersion})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := UnmarshalHead(in)
		if err != nil {
			if !errors.Is(err, ErrBadHead) {
				t.Fatalf("error outside ErrBadHead: %v", err)
			}
			return
		}
		out, err := MarshalHead(h)
		if err != nil {
			t.Fatalf("MarshalHead refuses what UnmarshalHead accepted: %v", err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted a head that is not canonical")
		}
	})
}
