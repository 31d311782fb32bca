package format

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"

	"github.com/blindstore/blindstore/internal/goldenfile"
	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/wire"
)

const smallBlock = wire.MinBlockSize

func testKey(seed string) Key { return Key(sha256.Sum256([]byte(seed))) }

// encryptRawFrame encrypts an arbitrary frame, as only a faulty writer holding
// the key would, to reach Open's frame checks.
func encryptRawFrame(key Key, id wire.ID, frame []byte, blockSize int) []byte {
	out := make([]byte, blockSize)
	copy(out[NonceSize:blockSize-TagSize], frame)
	var nonce [NonceSize]byte
	copy(out, nonce[:])
	return encryptFrame(key, id, out, out[NonceSize:blockSize-TagSize], &nonce)
}

// TestBlockGolden pins the block format; the vector was computed
// independently by testdata/crosscheck.py.
func TestBlockGolden(t *testing.T) {
	key := testKey("golden block key")
	id := wire.ID(unhex(t, "0f1e2d3c4b5a49788796a5b4c3d2e1f0"))
	var nonce [NonceSize]byte
	for i := range nonce {
		nonce[i] = byte(i)
	}
	payload := []byte("blindstore golden block v1")
	block, err := encryptWithNonce(key, id, payload, smallBlock, &nonce)
	if err != nil {
		t.Fatal(err)
	}
	if sum := sha256.Sum256(block); hex.EncodeToString(sum[:]) != "a53783937e84fafad737fc411579a45948f567ce040ead4ae38219d6f356ddb9" {
		t.Fatalf("golden block drifted: sha256 %x, starts %x", sum, block[:48])
	}
	golden := goldenfile.Read(t, "testdata/block-v1.golden", block)
	if !bytes.Equal(block, golden) {
		t.Fatal("block differs from testdata/block-v1.golden")
	}
	got, err := Decrypt(key, id, golden, smallBlock)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("Decrypt(golden) = %q, %v", got, err)
	}
}

func TestEncryptDecrypt(t *testing.T) {
	key := testKey("k")
	id := seeded.BlockID("b")
	for _, bs := range []int{wire.MinBlockSize, wire.DefaultBlockSize, wire.MaxBlockSize} {
		capacity := PayloadCapacity(bs)
		if capacity != bs-44 {
			t.Fatalf("PayloadCapacity(%d) = %d", bs, capacity)
		}
		for _, n := range []int{0, 1, capacity / 2, capacity - 1, capacity} {
			payload := bytes.Repeat([]byte{0xa5}, n)
			block, err := Encrypt(key, id, payload, bs)
			if err != nil {
				t.Fatal(err)
			}
			if len(block) != bs {
				t.Fatalf("encrypted %d bytes into %d, want %d", n, len(block), bs)
			}
			got, err := Decrypt(key, id, block, bs)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("round trip of %d bytes at block size %d: %v", n, bs, err)
			}
		}
		if _, err := Encrypt(key, id, make([]byte, capacity+1), bs); err == nil {
			t.Fatalf("Encrypt accepted %d bytes at block size %d", capacity+1, bs)
		}
	}
	for _, bs := range []int{0, 44, 512, 1000, 3000, wire.MaxBlockSize * 2} {
		if _, err := Encrypt(key, id, nil, bs); err == nil {
			t.Errorf("Encrypt accepted block size %d", bs)
		}
		if _, err := Decrypt(key, id, make([]byte, bs), bs); err == nil {
			t.Errorf("Open accepted block size %d", bs)
		}
	}
}

func TestDecryptRefuses(t *testing.T) {
	key, id := testKey("k"), seeded.BlockID("b")
	payload := []byte("the content of one block")
	block, err := Encrypt(key, id, payload, smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	orig := bytes.Clone(block)

	if _, err := Decrypt(key, id, block[:smallBlock-1], smallBlock); !errors.Is(err, ErrBlockSize) {
		t.Errorf("short block: %v", err)
	}
	if _, err := Decrypt(key, id, append(bytes.Clone(block), 0), smallBlock); !errors.Is(err, ErrBlockSize) {
		t.Errorf("long block: %v", err)
	}
	// A server that answers with another block's data.
	if _, err := Decrypt(key, seeded.BlockID("other"), block, smallBlock); !errors.Is(err, ErrTampered) {
		t.Errorf("block under another id: %v", err)
	}
	if _, err := Decrypt(testKey("other"), id, block, smallBlock); !errors.Is(err, ErrTampered) {
		t.Errorf("wrong key: %v", err)
	}
	// A flipped bit anywhere: the nonce, the length field, the payload,
	// the padding, the tag.
	for _, i := range []int{0, NonceSize - 1, NonceSize, NonceSize + 4, smallBlock / 2, smallBlock - TagSize - 1, smallBlock - 1} {
		b := bytes.Clone(block)
		b[i] ^= 0x01
		if _, err := Decrypt(key, id, b, smallBlock); !errors.Is(err, ErrTampered) {
			t.Errorf("bit flipped at %d: %v", i, err)
		}
	}
	if !bytes.Equal(block, orig) {
		t.Fatal("Open modified its input")
	}

	frameLen := smallBlock - NonceSize - TagSize
	tooLong := make([]byte, frameLen)
	binary.BigEndian.PutUint32(tooLong, uint32(frameLen-LengthSize+1))
	if _, err := Decrypt(key, id, encryptRawFrame(key, id, tooLong, smallBlock), smallBlock); !errors.Is(err, ErrBadFrame) {
		t.Errorf("length beyond the capacity: %v", err)
	}
	huge := make([]byte, frameLen)
	binary.BigEndian.PutUint32(huge, 0xffffffff)
	if _, err := Decrypt(key, id, encryptRawFrame(key, id, huge, smallBlock), smallBlock); !errors.Is(err, ErrBadFrame) {
		t.Errorf("length 2^32-1: %v", err)
	}
	dirty := make([]byte, frameLen)
	binary.BigEndian.PutUint32(dirty, 3)
	copy(dirty[4:], "abc")
	dirty[frameLen-1] = 1
	if _, err := Decrypt(key, id, encryptRawFrame(key, id, dirty, smallBlock), smallBlock); !errors.Is(err, ErrBadFrame) {
		t.Errorf("non-zero padding: %v", err)
	}
	dirty[frameLen-1] = 0
	if got, err := Decrypt(key, id, encryptRawFrame(key, id, dirty, smallBlock), smallBlock); err != nil || string(got) != "abc" {
		t.Errorf("the clean frame of the same shape: %q, %v", got, err)
	}
}

// TestEncryptUnlinkable: two encryptions of one plaintext under one key and ID
// share no more than chance, so the server cannot tell they are equal.
func TestEncryptUnlinkable(t *testing.T) {
	key, id := testKey("k"), seeded.BlockID("b")
	payload := bytes.Repeat([]byte("same plaintext "), 1000)
	const bs = wire.DefaultBlockSize
	a, err := Encrypt(key, id, payload, bs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Encrypt(key, id, payload, bs)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[:NonceSize], b[:NonceSize]) {
		t.Fatal("two encryptions used one nonce")
	}
	same := 0
	for i := range a {
		if a[i] == b[i] {
			same++
		}
	}
	// Independent random bytes agree at bs/256 = 256 positions on
	// average, with a standard deviation of 16.
	if same > 400 {
		t.Fatalf("two encryptions of one plaintext agree at %d of %d bytes", same, bs)
	}
	if wire.ETagOf(a) == wire.ETagOf(b) {
		t.Fatal("two encryptions of one plaintext share an ETag")
	}
}

// frameTestBlock is a block size with room for a 1000-byte payload.
const frameTestBlock = 4096

// seededBytes returns n bytes drawn from a stream seeded by seed.
func seededBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = deterministic(fmt.Sprint(seed)).Read(b)
	return b
}

// EncryptFrameInto makes the very block encryptInto makes of the same payload,
// from a frame and into a block buffer that held others before.
func TestEncryptFrameIntoIsEncryptInto(t *testing.T) {
	var key Key
	copy(key[:], seededBytes(1, KeySize))
	id := wire.NewID()
	var nonce [NonceSize]byte
	copy(nonce[:], seededBytes(2, NonceSize))
	for _, n := range []int{0, 1, 1000, PayloadCapacity(frameTestBlock)} {
		payload := seededBytes(uint64(n), n)
		want := encryptInto(make([]byte, frameTestBlock), key, id, payload, &nonce)
		frame := seededBytes(98, FrameSize(frameTestBlock)) // stale bytes everywhere
		copy(frame[LengthSize:], payload)
		got := EncryptFrameInto(seededBytes(99, frameTestBlock), key, id, frame, n, &nonce)
		if !bytes.Equal(got, want) {
			t.Fatalf("%d bytes: encryptFrameInto differs from encryptInto", n)
		}
		if p, err := Decrypt(key, id, got, frameTestBlock); err != nil || !bytes.Equal(p, payload) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
}
