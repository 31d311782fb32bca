package format

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/blindstore/blindstore/internal/goldenfile"
	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/indexfile"
)

// deterministic is a reproducible random source for golden vectors.
func deterministic(seed string) *rand.ChaCha8 {
	return rand.NewChaCha8(testKey("seed:" + seed))
}

func fixtureRoot() *Root {
	r := &Root{AccountKey: testKey("account"), OwnerSecret: OwnerSecret(testKey("owner")), IndexLen: 2500}
	for _, s := range []string{"i0", "i1", "i2"} {
		r.Index = append(r.Index, indexfile.Ref{ID: seeded.BlockID(s), ETag: wire.ETagOf([]byte(s))})
	}
	return r
}

// goldenLocator is the locator of a fixed master, without Argon2.
func goldenLocator() Locator { return master(testKey("golden master")).locator() }

func TestRootGolden(t *testing.T) {
	loc := goldenLocator()
	p, err := MarshalRoot(fixtureRoot())
	if err != nil {
		t.Fatal(err)
	}
	if len(p) != 1+32+32+8+4+3*32 || p[0] != RootVersion {
		t.Fatalf("root payload of %d bytes, version %d", len(p), p[0])
	}
	var nonce [NonceSize]byte
	copy(nonce[:], "golden root nonce.......")
	block, err := encryptWithNonce(loc.Key, loc.ID, p, smallBlock, &nonce)
	if err != nil {
		t.Fatal(err)
	}
	golden := goldenfile.Read(t, "testdata/root-v1.golden", block)
	if !bytes.Equal(block, golden) {
		t.Fatal("root block differs from testdata/root-v1.golden: the root format drifted")
	}
	got, err := DecryptRoot(loc, golden, smallBlock)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, fixtureRoot()) {
		t.Fatalf("golden root opens to %+v", got)
	}
}

func TestRootRoundTrip(t *testing.T) {
	fresh, err := NewRoot()
	if err != nil {
		t.Fatal(err)
	}
	if fresh.AccountKey == (Key{}) || fresh.OwnerSecret == (OwnerSecret{}) || Key(fresh.OwnerSecret) == fresh.AccountKey {
		t.Fatal("NewRoot's secrets are not random")
	}
	for _, r := range []*Root{fresh, fixtureRoot()} {
		p, err := MarshalRoot(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := UnmarshalRoot(p)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, r) {
			t.Fatalf("round trip: %+v, want %+v", got, r)
		}
	}
}

func TestUnmarshalRootRefuses(t *testing.T) {
	good, err := MarshalRoot(fixtureRoot())
	if err != nil {
		t.Fatal(err)
	}
	with := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	const countOff, lenOff, firstRef = 1 + 64 + 8, 1 + 64, 1 + 64 + 8 + 4
	cases := map[string][]byte{
		"empty":                 {},
		"version 0":             with(func(b []byte) []byte { b[0] = 0; return b }),
		"version 2":             with(func(b []byte) []byte { b[0] = 2; return b }),
		"truncated header":      good[:40],
		"truncated list":        good[:len(good)-1],
		"trailing bytes":        append(bytes.Clone(good), 0),
		"count 2^32-1":          with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[countOff:], 1<<32-1); return b }),
		"count one too many":    with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[countOff:], 4); return b }),
		"count one too few":     with(func(b []byte) []byte { binary.BigEndian.PutUint32(b[countOff:], 2); return b }),
		"duplicate index block": with(func(b []byte) []byte { copy(b[firstRef+32:], b[firstRef:firstRef+16]); return b }),
		"id not v4":             with(func(b []byte) []byte { b[firstRef+6] = 0x71; return b }),
		"zero account key":      with(func(b []byte) []byte { clear(b[1:33]); return b }),
		"zero owner secret":     with(func(b []byte) []byte { clear(b[33:65]); return b }),
		"length without blocks": func() []byte {
			b, _ := MarshalRoot(&Root{AccountKey: testKey("a"), OwnerSecret: OwnerSecret(testKey("o"))})
			binary.BigEndian.PutUint64(b[lenOff:], 2500)
			return b
		}(),
		"blocks without length": with(func(b []byte) []byte { binary.BigEndian.PutUint64(b[lenOff:], 0); return b }),
	}
	for name, b := range cases {
		if r, err := UnmarshalRoot(b); !errors.Is(err, ErrBadRoot) {
			t.Errorf("%s: UnmarshalRoot = %+v, %v; want ErrBadRoot", name, r, err)
		}
	}
	if _, err := UnmarshalRoot(good); err != nil {
		t.Fatal(err)
	}
}

// TestRootLocators walks through what the root is for: the password's
// root and the recovery code's root wrap the same secrets, a password
// change moves the root, and no locator opens another's root.
func TestRootLocators(t *testing.T) {
	root, err := NewRoot()
	if err != nil {
		t.Fatal(err)
	}
	oldPass, err := deriveLocator(cheapKDF, "alice", "old password", nil)
	if err != nil {
		t.Fatal(err)
	}
	newPass, err := deriveLocator(cheapKDF, "alice", "new password", nil)
	if err != nil {
		t.Fatal(err)
	}
	code, err := NewRecoveryCode()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseRecoveryCode(code.String())
	if err != nil {
		t.Fatal(err)
	}
	recovery := parsed.Locator()

	blocks := map[string][]byte{}
	for name, loc := range map[string]Locator{"old": oldPass, "new": newPass, "recovery": recovery} {
		b, err := EncryptRoot(loc, root, wire.DefaultBlockSize)
		if err != nil {
			t.Fatal(err)
		}
		blocks[name] = b
		got, err := DecryptRoot(loc, b, wire.DefaultBlockSize)
		if err != nil {
			t.Fatalf("%s root does not open: %v", name, err)
		}
		if got.AccountKey != root.AccountKey || got.OwnerSecret != root.OwnerSecret {
			t.Fatalf("%s root wraps other secrets", name)
		}
	}
	if oldPass.ID == newPass.ID || oldPass.ID == recovery.ID {
		t.Fatal("two locators share a root id")
	}
	if _, err := DecryptRoot(newPass, blocks["old"], wire.DefaultBlockSize); !errors.Is(err, ErrTampered) {
		t.Fatalf("the new password opens the old root: %v", err)
	}
	if _, err := DecryptRoot(recovery, blocks["new"], wire.DefaultBlockSize); !errors.Is(err, ErrTampered) {
		t.Fatalf("the recovery code opens the password's root: %v", err)
	}
}
