package format

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

// cheapKDF makes Argon2id fast for tests that are about what surrounds
// it. Only tests reach it: production code goes through DeriveLocator,
// which refuses anything weaker than KDFv1.
var cheapKDF = KDFParams{Time: 1, Memory: 64, Threads: 1}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkLocator(t *testing.T, name string, got Locator, id, proof, key string) {
	t.Helper()
	if hex.EncodeToString(got.ID[:]) != id {
		t.Errorf("%s root_id = %x, want %s", name, got.ID, id)
	}
	if hex.EncodeToString(got.Proof[:]) != proof {
		t.Errorf("%s root_proof = %x, want %s", name, got.Proof, proof)
	}
	if hex.EncodeToString(got.Key[:]) != key {
		t.Errorf("%s root_key = %x, want %s", name, got.Key, key)
	}
}

// The golden vectors below were computed independently by
// testdata/crosscheck.py (Python's cryptography package).
const goldenUser, goldenPassword = "  Ａlice ", "correct horse battery staple"

// TestPasswordLocatorGolden runs the real KDF (t=3, 64 MiB, p=4): if this
// fails, every account's root has moved.
func TestPasswordLocatorGolden(t *testing.T) {
	loc, err := PasswordLocator(goldenUser, goldenPassword, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkLocator(t, "password", loc,
		"dfdac2fca0b447acab19e029bb3874d0",
		"49d5f63f297ab3a81124ca4cd6b208ebd0b79956448eb437bc8f8c730fee68af",
		"c0dc8400f77ffc61c181db8ff3cd21fbaf9452fc044bad029208eccc25952545")

	// The device key mixes into the same master; no second Argon2 run.
	m, err := passwordMaster(KDFv1, goldenUser, goldenPassword)
	if err != nil {
		t.Fatal(err)
	}
	if want := "916791fdd2c9396448556949e980a4e483ae89c1441e078d6a586880f6f1c638"; hex.EncodeToString(m[:]) != want {
		t.Fatalf("master = %x, want %s", m, want)
	}
	var dev DeviceKey
	for i := range dev {
		dev[i] = byte(i)
	}
	checkLocator(t, "device", m.withDevice(dev).locator(),
		"d7860142cfaa42a9b14ebeb45c093fc7",
		"b3783c432cef7595bed29907c45f35704a812f5c990ec86802ece2132a29b9d0",
		"de7a860cefce31baf00a6965b44f1b4e8aea66ac0550f8015839629810623f54")
}

func TestRecoveryLocatorGolden(t *testing.T) {
	var code RecoveryCode
	for i := range code {
		code[i] = byte(100 + i)
	}
	if got, want := code.String(), "CHJP-CSV8-D5N6-PV3D-DSQQ-0WBJ-EDT7-AXKQ"; got != want {
		t.Fatalf("code = %s, want %s", got, want)
	}
	checkLocator(t, "recovery", code.Locator(),
		"15ac0488d3874cc6804587992fcb36a1",
		"6a9d5e052487d7f125f85af166068ad18fe566b38dc37f7c4768a2b57d585799",
		"8cab8a5d3a9d32545d7996b02c0bc2e93f2e81e31b15319c85b80c870934699f")
}

func TestWriteProofGolden(t *testing.T) {
	var s OwnerSecret
	for i := range s {
		s[i] = 7
	}
	id := wire.ID(unhex(t, "0f1e2d3c4b5a49788796a5b4c3d2e1f0"))
	w := s.WriteProof(id)
	if got := hex.EncodeToString(w[:]); got != "19bcbd85888c91346e50a36dbb4c02e8191436a4413beb7ee3ad31a17fc92706" {
		t.Fatalf("write proof = %s", got)
	}
	r := s.RenewProof(id)
	if got := hex.EncodeToString(r[:]); got != "02c2d92c6f9c059c4f3510745c300909696ef8bd09a86dfa398b622639127365" {
		t.Fatalf("renew proof = %s", got)
	}
	if r != w.Renew() {
		t.Fatal("RenewProof is not the write proof's Renew")
	}
	other := id
	other[15] ^= 1
	if s.WriteProof(other) == w {
		t.Fatal("two blocks share a write proof")
	}
}

func TestNormalizeUsername(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Alice", "alice"},
		{"  Bob\t\n", "bob"},
		{"Ａｌｉｃｅ", "alice"},             // fullwidth forms fold under NFKC
		{"Zoe\u0308", "zo\u00eb"},      // a decomposed ë composes
		{"ZO\u00cb", "zo\u00eb"},       // upper case with a composed Ë
		{"ﬁnn", "finn"},                // the fi ligature
		{"\u3000kyoko\u3000", "kyoko"}, // ideographic spaces
		{"Ωmega", "ωmega"},
	} {
		got, err := NormalizeUsername(c.in)
		if err != nil || got != c.want {
			t.Errorf("NormalizeUsername(%q) = %q, %v; want %q", c.in, got, err, c.want)
			continue
		}
		if again, _ := NormalizeUsername(got); again != got {
			t.Errorf("NormalizeUsername is not idempotent on %q: %q", got, again)
		}
	}
	for _, in := range []string{"", "   ", "\t\u3000"} {
		if _, err := NormalizeUsername(in); !errors.Is(err, ErrEmptyUsername) {
			t.Errorf("NormalizeUsername(%q) = %v, want ErrEmptyUsername", in, err)
		}
	}
	if _, err := NormalizeUsername("al\xffice"); !errors.Is(err, ErrBadUsername) {
		t.Errorf("invalid UTF-8 accepted: %v", err)
	}
}

func TestKDFParamsCheck(t *testing.T) {
	if err := KDFv1.Check(); err != nil {
		t.Fatalf("KDFv1 refused: %v", err)
	}
	stronger := KDFParams{Time: 4, Memory: 256 * 1024, Threads: 8}
	if err := stronger.Check(); err != nil {
		t.Fatalf("stronger parameters refused: %v", err)
	}
	for _, p := range []KDFParams{
		{Time: 2, Memory: 64 * 1024, Threads: 4},
		{Time: 3, Memory: 64*1024 - 1, Threads: 4},
		{Time: 3, Memory: 64 * 1024, Threads: 0},
		{Time: 1, Memory: 64, Threads: 1}, // the tests' cheap setting
		{Time: 65, Memory: 64 * 1024, Threads: 4},
		{Time: 3, Memory: 2 << 20, Threads: 4},
		{},
	} {
		if err := p.Check(); err == nil {
			t.Errorf("Check accepted %+v", p)
		}
		if _, err := DeriveLocator(p, "alice", "pw", nil); err == nil {
			t.Errorf("DeriveLocator accepted %+v", p)
		}
	}
}

func TestLocators(t *testing.T) {
	derive := func(user, pass string, dev *DeviceKey) Locator {
		t.Helper()
		l, err := deriveLocator(cheapKDF, user, pass, dev)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	base := derive("alice", "hunter2", nil)
	if err := base.ID.Validate(); err != nil {
		t.Fatalf("root_id is not a v4 UUID: %v", err)
	}
	if base.ID == wire.ID(base.Key[:16]) || base.Key == Key(base.Proof) {
		t.Fatal("root_id, root_proof and root_key are not independent")
	}
	if derive("  ALICE ", "hunter2", nil) != base {
		t.Fatal("the same user typed differently gives another locator")
	}
	if derive("bob", "hunter2", nil) == base {
		t.Fatal("two users with one password share a locator")
	}
	if derive("alice", "Hunter2", nil) == base {
		t.Fatal("the password's case is folded")
	}
	if derive("alice", "caf\u00e9", nil) != derive("alice", "cafe\u0301", nil) {
		t.Fatal("a password typed with a decomposed accent gives another locator")
	}
	d1, d2 := DeviceKey{1}, DeviceKey{2}
	l1 := derive("alice", "hunter2", &d1)
	if l1 == base || l1 == derive("alice", "hunter2", &d2) {
		t.Fatal("the device key does not change the locator")
	}
	if l1 != derive("alice", "hunter2", &d1) {
		t.Fatal("derivation is not deterministic")
	}
	for _, bad := range []string{"", "pw\xff"} {
		if _, err := deriveLocator(cheapKDF, "alice", bad, nil); !errors.Is(err, ErrBadPassword) {
			t.Errorf("password %q: %v", bad, err)
		}
	}
	if _, err := deriveLocator(cheapKDF, " ", "pw", nil); !errors.Is(err, ErrEmptyUsername) {
		t.Errorf("empty user: %v", err)
	}
}

func TestRecoveryCode(t *testing.T) {
	c, err := NewRecoveryCode()
	if err != nil {
		t.Fatal(err)
	}
	s := c.String()
	if len(s) != 39 || strings.Count(s, "-") != 7 {
		t.Fatalf("code %q is not 8 dash-separated groups of 4", s)
	}
	for _, typed := range []string{
		s,
		strings.ToLower(s),
		strings.ReplaceAll(s, "-", ""),
		strings.ReplaceAll(s, "-", " "),
		" " + s + "\t",
	} {
		got, err := ParseRecoveryCode(typed)
		if err != nil || got != c {
			t.Fatalf("ParseRecoveryCode(%q) = %v, %v", typed, got, err)
		}
	}
	// O, I and L are read as the digits they look like.
	zeros := RecoveryCode{}
	if got, err := ParseRecoveryCode("oooo-0000-OOOO-0000-0000-0000-0000-0000"); err != nil || got != zeros {
		t.Fatalf("O not read as 0: %v, %v", got, err)
	}
	ones, _ := ParseRecoveryCode("1111-1111-1111-1111-1111-1111-1111-1111")
	if got, err := ParseRecoveryCode("IiLl-1111-1111-1111-1111-1111-1111-1111"); err != nil || got != ones {
		t.Fatalf("I and L not read as 1: %v", err)
	}
	for _, bad := range []string{
		"",
		s[:len(s)-1],
		s + "0",
		s + strings.Repeat("0", 100), // longer than the decoder's buffer
		"UUUU-0000-0000-0000-0000-0000-0000-0000",
		"ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZ=",
		"ÄÄÄÄ-0000-0000-0000-0000-0000-0000-0000",
	} {
		if _, err := ParseRecoveryCode(bad); !errors.Is(err, ErrBadRecoveryCode) {
			t.Errorf("ParseRecoveryCode(%q) = %v", bad, err)
		}
	}
	if c.Locator() == (RecoveryCode{}).Locator() {
		t.Fatal("two codes share a locator")
	}
	if err := c.Locator().ID.Validate(); err != nil {
		t.Fatal(err)
	}
}
