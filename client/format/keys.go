package format

// Key derivation, docs/spec.md "Keys". All of it runs on the client; the
// server never sees a password, a device key or a recovery code.
//
//	user     = NFKC(lower(NFKC(username))), trimmed of white space; not empty
//	pass     = NFC(password); valid UTF-8, not empty
//	salt     = SHA-256("blindstore/v1/salt" ‖ user)
//	master   = Argon2id(pass, salt, t=3, m=64 MiB, p=4, 32 bytes)       (KDFv1)
//
// With a device key (32 random bytes kept in a file on the device):
//
//	master   = HKDF-SHA256(ikm = master ‖ device_key, salt = "",
//	                       info = "blindstore/v1/device", 32 bytes)
//
// With a recovery code (20 random bytes, shown to the user once):
//
//	master   = HKDF-SHA256(ikm = code, salt = "", info = "blindstore/v1/recovery", 32 bytes)
//
// The code carries 160 uniformly random bits, so a slow KDF would add
// nothing: stretching protects secrets that can be guessed, and 2^160
// guesses are out of reach at any speed. The device key is not mixed into
// the recovery master, because the code is what a user who lost the device
// still has.
//
// From a master, the root locator (HKDF-SHA256, salt = "", ikm = master):
//
//	root_id    = HKDF(info = "blindstore/v1/root-id", 16 bytes), with the
//	             UUID version set to 4 and the variant to RFC 9562
//	root_proof = HKDF(info = "blindstore/v1/root-proof", 32 bytes)   (a write proof)
//	root_key   = HKDF(info = "blindstore/v1/root-key", 32 bytes)
//
// From the owner secret kept in the root, per block (docs/spec.md, "Write
// proofs"):
//
//	w = HMAC-SHA256(owner_secret, "proof" ‖ id)     write proof
//	r = SHA-256("blindstore/v1/renew" ‖ w)          renew proof (wire.WriteProof.Renew)

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/blindstore/blindstore/wire"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/hkdf"
	"golang.org/x/text/unicode/norm"
)

// KeySize is the size of every symmetric key and secret: root keys, the
// account key, the owner secret, file keys, device keys and masters.
const KeySize = 32

// Key is a 256-bit symmetric key for XChaCha20-Poly1305.
type Key [KeySize]byte

// NewKey returns a fresh random key.
func NewKey() (Key, error) { return newKey(rand.Reader) }

func newKey(rnd io.Reader) (Key, error) {
	var k Key
	if _, err := io.ReadFull(rnd, k[:]); err != nil {
		return Key{}, fmt.Errorf("client: generating a key: %w", err)
	}
	return k, nil
}

// Domain-separation strings. They are part of the format: changing one
// changes every locator, so they carry the format version.
const (
	saltPrefix    = "blindstore/v1/salt"
	infoDevice    = "blindstore/v1/device"
	infoRecovery  = "blindstore/v1/recovery"
	infoRootID    = "blindstore/v1/root-id"
	infoRootProof = "blindstore/v1/root-proof"
	infoRootKey   = "blindstore/v1/root-key"
	proofPrefix   = "proof"
)

// KDFParams are the Argon2id parameters of a format version.
type KDFParams struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8  // lanes
}

// KDFv1 are the parameters of format version 1. They are part of the
// format: other values derive other locators.
var KDFv1 = KDFParams{Time: 3, Memory: 64 * 1024, Threads: 4}

// Bounds on what Check accepts above KDFv1, so that a tampered setting
// cannot make the client exhaust the machine either.
const (
	maxKDFTime   = 64
	maxKDFMemory = 1 << 20 // KiB: 1 GiB
)

// Check refuses parameters weaker than KDFv1 (so an old or tampered
// setting cannot downgrade the password hashing) and absurdly costly ones.
func (p KDFParams) Check() error {
	switch {
	case p.Time < KDFv1.Time || p.Memory < KDFv1.Memory:
		return fmt.Errorf("client: password hashing parameters (t=%d, m=%d KiB) are weaker than the minimum (t=%d, m=%d KiB); refusing them",
			p.Time, p.Memory, KDFv1.Time, KDFv1.Memory)
	case p.Threads == 0:
		return errors.New("client: password hashing needs at least one thread")
	case p.Time > maxKDFTime || p.Memory > maxKDFMemory:
		return fmt.Errorf("client: password hashing parameters (t=%d, m=%d KiB) exceed the maximum (t=%d, m=%d KiB)",
			p.Time, p.Memory, maxKDFTime, maxKDFMemory)
	}
	return nil
}

// Errors for credentials that cannot be used.
var (
	ErrEmptyUsername = errors.New("client: the user name is empty")
	ErrBadUsername   = errors.New("client: the user name is not valid UTF-8")
	ErrBadPassword   = errors.New("client: the password must be non-empty, valid UTF-8")
)

// NormalizeUsername maps the ways a person may type the same name to one
// string: compatibility forms folded (NFKC), lower case, surrounding white
// space removed. NFKC runs again after lower-casing because case mapping
// can leave a string that is not normalized.
func NormalizeUsername(u string) (string, error) {
	if !utf8.ValidString(u) {
		return "", ErrBadUsername
	}
	n := strings.TrimSpace(norm.NFKC.String(strings.ToLower(norm.NFKC.String(u))))
	if n == "" {
		return "", ErrEmptyUsername
	}
	return n, nil
}

// normalizePassword applies NFC only: the same characters typed on two
// systems that compose accents differently must give the same key, but
// case and compatibility forms are the user's secret to keep distinct.
func normalizePassword(p string) (string, error) {
	if p == "" || !utf8.ValidString(p) {
		return "", ErrBadPassword
	}
	return norm.NFC.String(p), nil
}

// master is a 32-byte secret from which a root locator is derived.
type master [KeySize]byte

// passwordMaster runs Argon2id without checking p: DeriveLocator checks
// it first. Tests that are not about the KDF call it with cheap parameters.
func passwordMaster(p KDFParams, username, password string) (master, error) {
	user, err := NormalizeUsername(username)
	if err != nil {
		return master{}, err
	}
	pass, err := normalizePassword(password)
	if err != nil {
		return master{}, err
	}
	salt := sha256.Sum256([]byte(saltPrefix + user))
	var m master
	copy(m[:], argon2.IDKey([]byte(pass), salt[:], p.Time, p.Memory, p.Threads, KeySize))
	return m, nil
}

// withDevice mixes a device key into a master.
func (m master) withDevice(d DeviceKey) master {
	ikm := make([]byte, 0, 2*KeySize)
	ikm = append(append(ikm, m[:]...), d[:]...)
	var out master
	expand(ikm, infoDevice, out[:])
	return out
}

// expand fills out with HKDF-SHA256(ikm, salt = "", info).
func expand(ikm []byte, info string, out []byte) {
	if _, err := io.ReadFull(hkdf.New(sha256.New, ikm, nil, []byte(info)), out); err != nil {
		// HKDF-SHA256 yields up to 8160 bytes; we never ask for more than 32.
		panic("client: hkdf: " + err.Error())
	}
}

// Locator says where a root block lives and how to open and replace it.
// It is as secret as the password it comes from: never log it, and keep
// it only where a session must (a file readable by its owner alone).
type Locator struct {
	ID    wire.ID         // root_id
	Proof wire.WriteProof // root_proof
	Key   Key             // root_key
}

func (m master) locator() Locator {
	var l Locator
	expand(m[:], infoRootID, l.ID[:])
	l.ID[6] = l.ID[6]&0x0f | 0x40 // version 4
	l.ID[8] = l.ID[8]&0x3f | 0x80 // RFC 9562 variant
	expand(m[:], infoRootProof, l.Proof[:])
	expand(m[:], infoRootKey, l.Key[:])
	return l
}

// PasswordLocator derives the locator of an account's root from its user
// name and password, with the format's KDFv1 parameters. device is the
// account's device key, or nil if it has none. It takes about a third of a
// second and 64 MiB of memory.
func PasswordLocator(username, password string, device *DeviceKey) (Locator, error) {
	return DeriveLocator(KDFv1, username, password, device)
}

// DeriveLocator is PasswordLocator with explicit parameters, which must
// pass Check.
func DeriveLocator(p KDFParams, username, password string, device *DeviceKey) (Locator, error) {
	if err := p.Check(); err != nil {
		return Locator{}, err
	}
	return deriveLocator(p, username, password, device)
}

func deriveLocator(p KDFParams, username, password string, device *DeviceKey) (Locator, error) {
	m, err := passwordMaster(p, username, password)
	if err != nil {
		return Locator{}, err
	}
	if device != nil {
		m = m.withDevice(*device)
	}
	return m.locator(), nil
}

// OwnerSecret is the account's secret from which every block's ownership
// proofs are derived. It lives only inside the root block.
type OwnerSecret [KeySize]byte

// WriteProof returns w = HMAC-SHA256(owner_secret, "proof" ‖ id), which
// authorizes writing and deleting the block.
func (s OwnerSecret) WriteProof(id wire.ID) wire.WriteProof {
	h := hmac.New(sha256.New, s[:])
	h.Write([]byte(proofPrefix))
	h.Write(id[:])
	var w wire.WriteProof
	h.Sum(w[:0])
	return w
}

// RenewProof returns the block's renew proof, which authorizes only
// renewal: SHA-256("blindstore/v1/renew" ‖ w).
func (s OwnerSecret) RenewProof(id wire.ID) wire.RenewProof {
	return s.WriteProof(id).Renew()
}

// DeviceKey is an optional second secret kept in a file on the user's
// devices. With it, a copy of the store cannot be attacked by guessing
// passwords, however weak: the locator depends on 256 bits the attacker
// does not have.
type DeviceKey [KeySize]byte

// NewDeviceKey returns a fresh random device key.
func NewDeviceKey() (DeviceKey, error) {
	k, err := newKey(rand.Reader)
	return DeviceKey(k), err
}

// deviceKeyPrefix begins a device key file, so that a wrong file is
// recognized as such rather than derived into a wrong locator.
const deviceKeyPrefix = "blindstore-device-key-v1:"

// MarshalText encodes the key as a device key file's content (without the
// final newline): the prefix, then the key in base64url without padding.
func (d DeviceKey) MarshalText() ([]byte, error) {
	return []byte(deviceKeyPrefix + base64.RawURLEncoding.EncodeToString(d[:])), nil
}

// UnmarshalText parses what MarshalText writes; surrounding white space is
// ignored.
func (d *DeviceKey) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	enc, ok := strings.CutPrefix(s, deviceKeyPrefix)
	if !ok {
		return errors.New("client: not a blindstore device key file")
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || len(raw) != KeySize {
		return errors.New("client: the device key file is damaged")
	}
	copy(d[:], raw)
	return nil
}

// RecoveryCodeSize is the number of random bytes in a recovery code.
const RecoveryCodeSize = 20

// RecoveryCode is a high-entropy secret shown to the user once, which
// locates and opens a second root wrapping the same account secrets.
type RecoveryCode [RecoveryCodeSize]byte

// recoveryEncoding is Crockford's base32: digits and upper-case letters
// without I, L, O and U, so the code reads aloud and types without
// ambiguity. 20 bytes are exactly 32 characters.
var recoveryEncoding = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

// NewRecoveryCode returns a fresh random recovery code.
func NewRecoveryCode() (RecoveryCode, error) {
	var c RecoveryCode
	if _, err := io.ReadFull(rand.Reader, c[:]); err != nil {
		return RecoveryCode{}, fmt.Errorf("client: generating a recovery code: %w", err)
	}
	return c, nil
}

// String formats the code as eight groups of four characters joined by
// dashes, e.g. "7Q2M-…".
func (c RecoveryCode) String() string {
	s := recoveryEncoding.EncodeToString(c[:])
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+4])
	}
	return b.String()
}

// ErrBadRecoveryCode is returned for a string that is not a recovery code.
var ErrBadRecoveryCode = errors.New("client: not a recovery code: expected 32 characters (0-9, A-Z without I, L, O, U), grouped by dashes")

// ParseRecoveryCode reads a code as a person may type it: any case, with
// or without dashes and spaces, O read as 0 and I or L as 1.
func ParseRecoveryCode(s string) (RecoveryCode, error) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case '-', ' ', '\t':
			continue
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		b.WriteRune(r)
	}
	if b.Len() != recoveryEncoding.EncodedLen(RecoveryCodeSize) {
		return RecoveryCode{}, ErrBadRecoveryCode
	}
	var c RecoveryCode
	if n, err := recoveryEncoding.Decode(c[:], []byte(b.String())); err != nil || n != RecoveryCodeSize {
		return RecoveryCode{}, ErrBadRecoveryCode
	}
	return c, nil
}

// Locator derives the locator of the recovery root.
func (c RecoveryCode) Locator() Locator {
	var m master
	expand(c[:], infoRecovery, m[:])
	return m.locator()
}

// infoChunker derives the seed of the content-defined chunker's gear
// table, keyed per account so that chunk boundaries do not fingerprint the
// same content across accounts (client/chunker.go cuts with it).
const infoChunker = "blindstore/v1/chunker"

// ChunkerSeed returns HKDF-SHA256(ikm = account_key, salt = "",
// info = "blindstore/v1/chunker", 32 bytes), from which ChaCha8 draws the
// chunker's gear table.
func ChunkerSeed(accountKey Key) [32]byte {
	var seed [32]byte
	expand(accountKey[:], infoChunker, seed[:])
	return seed
}
