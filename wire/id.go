package wire

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"

	"github.com/google/uuid"
)

// ID names a block: a version 4 (random) UUID chosen by the client.
type ID [16]byte

// ParseID parses the canonical 36-character form and accepts only v4
// UUIDs of the RFC 9562 variant: other versions embed time or hardware.
func ParseID(s string) (ID, error) {
	if len(s) != 36 {
		return ID{}, E(KindInvalid, CodeBadID, "block id must be a UUID in its 36-character form")
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return ID{}, E(KindInvalid, CodeBadID, "block id is not a valid UUID")
	}
	id := ID(u)
	if err := id.Validate(); err != nil {
		return ID{}, err
	}
	return id, nil
}

// Validate reports whether id is a v4 UUID of the RFC 9562 variant.
func (id ID) Validate() error {
	if id[6]>>4 != 4 || id[8]&0xc0 != 0x80 {
		return E(KindInvalid, CodeBadID, "block id must be a random (version 4) UUID")
	}
	return nil
}

// String returns the canonical lower-case UUID form.
func (id ID) String() string { return uuid.UUID(id).String() }

// NewID returns a fresh random v4 ID.
func NewID() ID { return ID(uuid.New()) }

// HashSize is the size of proofs and proof hashes.
const HashSize = 32

// WriteProof is the 32-byte secret that authorizes put, overwrite and
// delete: w = HMAC-SHA256(owner_secret, "proof" ‖ id), derived by the client.
type WriteProof [HashSize]byte

// RenewProof is r = SHA-256("blindstore/v1/renew" ‖ w). It authorizes only
// renewal, so it can be handed to a machine the owner does not fully trust.
type RenewProof [HashSize]byte

// ProofHash is SHA-256(r), the only thing the store keeps of a proof.
type ProofHash [HashSize]byte

// renewPrefix separates the renew-proof hash from any other use of SHA-256.
const renewPrefix = "blindstore/v1/renew"

// Renew derives the renew proof from a write proof.
func (w WriteProof) Renew() RenewProof {
	h := sha256.New()
	h.Write([]byte(renewPrefix))
	h.Write(w[:])
	var r RenewProof
	h.Sum(r[:0])
	return r
}

// Hash returns the stored hash of a write proof: SHA-256(SHA-256(prefix ‖ w)).
func (w WriteProof) Hash() ProofHash { return w.Renew().Hash() }

// Hash returns the stored hash of a renew proof: SHA-256(r).
func (r RenewProof) Hash() ProofHash { return ProofHash(sha256.Sum256(r[:])) }

// Equal compares two proof hashes in constant time.
func (h ProofHash) Equal(o ProofHash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// ParseProof decodes a base64url (no padding) 32-byte proof, as carried by
// the Blind-Proof header and the renew request. Padding is tolerated.
func ParseProof(s string) ([HashSize]byte, error) {
	var p [HashSize]byte
	s = strings.TrimRight(s, "=")
	if s == "" {
		return p, E(KindInvalid, CodeBadProof, "proof is missing")
	}
	if base64.RawURLEncoding.DecodedLen(len(s)) != HashSize {
		return p, E(KindInvalid, CodeBadProof, "proof must be 32 bytes in base64url")
	}
	if _, err := base64.RawURLEncoding.Decode(p[:], []byte(s)); err != nil {
		return p, E(KindInvalid, CodeBadProof, "proof is not valid base64url")
	}
	return p, nil
}

// EncodeProof encodes a proof as base64url without padding.
func EncodeProof(p [HashSize]byte) string { return base64.RawURLEncoding.EncodeToString(p[:]) }

// ETagSize is the size of an ETag in bytes.
const ETagSize = 16

// ETag identifies one version of a block's content: the first 16 bytes of
// SHA-256 of its ciphertext. It is a function of the data and reveals
// nothing the data does not.
type ETag [ETagSize]byte

// ETagOf computes the ETag of block data.
func ETagOf(data []byte) ETag {
	s := sha256.Sum256(data)
	var e ETag
	copy(e[:], s[:ETagSize])
	return e
}

// String returns the ETag as RFC 9110 writes a strong entity tag: quoted.
func (e ETag) String() string { return `"` + base64.RawURLEncoding.EncodeToString(e[:]) + `"` }

// ParseETag parses a strong, quoted ETag as produced by String. A weak tag
// (W/"…") never matches a strong comparison, so it is refused.
func ParseETag(s string) (ETag, error) {
	var e ETag
	if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' {
		return e, E(KindInvalid, CodeBadETag, "entity tag must be a quoted strong ETag")
	}
	b, err := base64.RawURLEncoding.DecodeString(s[1 : len(s)-1])
	if err != nil || len(b) != ETagSize {
		return e, E(KindInvalid, CodeBadETag, "entity tag is not one this server issued")
	}
	copy(e[:], b)
	return e, nil
}
