package privacypass

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// TokenTypeBlindRSA is token type 0x0002: Blind RSA (2048-bit), publicly
// verifiable (RFC 9578 §8.2.2).
const TokenTypeBlindRSA uint16 = 0x0002

// Sizes of token type 0x0002.
const (
	Nk        = 256 // authenticator, blinded message and blind signature
	Nid       = 32  // token key id: SHA-256 of the key's SPKI
	NonceSize = 32
	// TokenSize is the size of a whole Token of type 0x0002.
	TokenSize = 2 + NonceSize + sha256.Size + Nid + Nk
	// saltLen is RSASSA-PSS's salt length: SHA-384's output size.
	saltLen = 48
)

// Errors of parsing and verification. Callers branch on them with
// errors.Is; their messages never hold token bytes.
var (
	ErrMalformed   = errors.New("privacypass: malformed structure")
	ErrTokenType   = errors.New("privacypass: unsupported token type")
	ErrBadKey      = errors.New("privacypass: not a 2048-bit RSASSA-PSS (SHA-384) token key")
	ErrWrongKey    = errors.New("privacypass: token key id does not match the key")
	ErrBadToken    = errors.New("privacypass: token signature does not verify")
	ErrChallenge   = errors.New("privacypass: token is for another challenge")
	ErrNoToken     = errors.New("privacypass: no PrivateToken credentials")
	ErrUnknownKey  = errors.New("privacypass: token key is not one this server accepts")
	ErrSpent       = errors.New("privacypass: token already spent")
	ErrUnavailable = errors.New("privacypass: the issuer's keys are not known yet")
)

// Challenge is a TokenChallenge (RFC 9577 §2.1.1):
//
//	struct {
//	    uint16_t token_type;
//	    opaque issuer_name<1..2^16-1>;
//	    opaque redemption_context<0..32>;
//	    opaque origin_info<0..2^16-1>;
//	} TokenChallenge;
type Challenge struct {
	TokenType         uint16
	IssuerName        string
	RedemptionContext []byte // empty or 32 bytes
	OriginInfo        string // empty, or origin names separated by commas
}

// Marshal encodes the challenge. It fails on fields the structure cannot
// carry.
func (c Challenge) Marshal() ([]byte, error) {
	if len(c.IssuerName) == 0 || len(c.IssuerName) > 0xffff || len(c.OriginInfo) > 0xffff {
		return nil, fmt.Errorf("%w: issuer_name must be 1 to 65535 bytes and origin_info at most 65535", ErrMalformed)
	}
	if n := len(c.RedemptionContext); n != 0 && n != 32 {
		return nil, fmt.Errorf("%w: redemption_context must be empty or 32 bytes", ErrMalformed)
	}
	var b cryptobyte.Builder
	b.AddUint16(c.TokenType)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.IssuerName)) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(c.RedemptionContext) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(c.OriginInfo)) })
	return b.Bytes()
}

// ParseChallenge decodes a TokenChallenge of any token type using the
// default structure, refusing trailing bytes and context lengths other
// than 0 or 32.
func ParseChallenge(raw []byte) (Challenge, error) {
	s := cryptobyte.String(raw)
	var c Challenge
	var issuer, ctx, origin cryptobyte.String
	if !s.ReadUint16(&c.TokenType) || !s.ReadUint16LengthPrefixed(&issuer) || !s.ReadUint8LengthPrefixed(&ctx) ||
		!s.ReadUint16LengthPrefixed(&origin) || !s.Empty() {
		return Challenge{}, fmt.Errorf("%w: TokenChallenge", ErrMalformed)
	}
	if len(issuer) == 0 || (len(ctx) != 0 && len(ctx) != 32) {
		return Challenge{}, fmt.Errorf("%w: TokenChallenge fields", ErrMalformed)
	}
	c.IssuerName = string(issuer)
	if len(ctx) > 0 {
		c.RedemptionContext = bytes.Clone(ctx)
	}
	c.OriginInfo = string(origin)
	return c, nil
}

// ChallengeDigest is SHA-256 of an encoded TokenChallenge.
func ChallengeDigest(encoded []byte) [32]byte { return sha256.Sum256(encoded) }

// HasOrigin reports whether origin_info is empty (any origin of the
// issuer) or lists name, compared case-insensitively (RFC 9577 §2.1.3).
func (c Challenge) HasOrigin(name string) bool {
	if c.OriginInfo == "" {
		return true
	}
	for _, o := range strings.Split(c.OriginInfo, ",") {
		if strings.EqualFold(o, name) {
			return true
		}
	}
	return false
}

// KeyID is a token key id: SHA-256 of the key's encoded SPKI.
type KeyID [Nid]byte

// Truncated is the key id's last byte, as a TokenRequest carries it.
func (id KeyID) Truncated() byte { return id[Nid-1] }

// String is the key id in base64url without padding: short, and safe in
// a file name or a log line (a key id is public).
func (id KeyID) String() string { return base64.RawURLEncoding.EncodeToString(id[:]) }

// PublicKey is an issuer's token key of type 0x0002.
type PublicKey struct {
	pk   *rsa.PublicKey
	spki []byte
	id   KeyID
}

// RSA returns the RSA public key.
func (k *PublicKey) RSA() *rsa.PublicKey { return k.pk }

// SPKI returns the key as RFC 9578 §6.5 encodes it.
func (k *PublicKey) SPKI() []byte { return bytes.Clone(k.spki) }

// ID returns the key's token_key_id.
func (k *PublicKey) ID() KeyID { return k.id }

// Equal reports whether two keys are the same key.
func (k *PublicKey) Equal(o *PublicKey) bool { return o != nil && k.id == o.id }

// pssAlgorithm is the DER AlgorithmIdentifier RFC 9578 §6.5 requires of
// a token key: id-RSASSA-PSS with RSASSA-PSS-params of SHA-384, MGF1 with
// SHA-384 and a 48-byte salt, hash identifiers without NULL parameters.
// One fixed encoding: a key has exactly one token_key_id.
var pssAlgorithm = []byte{
	0x30, 0x3d,
	0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a, // id-RSASSA-PSS
	0x30, 0x30,
	0xa0, 0x0d, 0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, // [0] sha384
	0xa1, 0x1a, 0x30, 0x18, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08, // [1] mgf1
	0x30, 0x0b, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, //     with sha384
	0xa2, 0x03, 0x02, 0x01, 0x30, // [2] saltLength 48
}

// MarshalPublicKey encodes pk as a token key (RFC 9578 §6.5).
func MarshalPublicKey(pk *rsa.PublicKey) (*PublicKey, error) {
	if pk == nil || pk.N.BitLen() != 8*Nk {
		return nil, ErrBadKey
	}
	pkcs1 := x509.MarshalPKCS1PublicKey(pk)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(pssAlgorithm)
		b.AddASN1BitString(pkcs1)
	})
	spki, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("privacypass: encode token key: %w", err)
	}
	return &PublicKey{pk: pk, spki: spki, id: sha256.Sum256(spki)}, nil
}

// ParsePublicKey decodes a token key: a DER SPKI with exactly the
// RSASSA-PSS parameters of type 0x0002 and a 2048-bit modulus.
func ParsePublicKey(spki []byte) (*PublicKey, error) {
	s := cryptobyte.String(spki)
	var seq, alg cryptobyte.String
	var bits asn1.BitString
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) || !s.Empty() ||
		!seq.ReadASN1Element(&alg, cbasn1.SEQUENCE) || !bytes.Equal(alg, pssAlgorithm) ||
		!seq.ReadASN1BitString(&bits) || !seq.Empty() || bits.BitLength%8 != 0 {
		return nil, ErrBadKey
	}
	pk, err := x509.ParsePKCS1PublicKey(bits.Bytes)
	if err != nil || pk.N.BitLen() != 8*Nk {
		return nil, ErrBadKey
	}
	return &PublicKey{pk: pk, spki: bytes.Clone(spki), id: sha256.Sum256(spki)}, nil
}

// Token is a Token of type 0x0002 (RFC 9577 §2.2):
//
//	struct {
//	    uint16_t token_type;
//	    uint8_t nonce[32];
//	    uint8_t challenge_digest[32];
//	    uint8_t token_key_id[Nid];
//	    uint8_t authenticator[Nk];
//	} Token;
type Token struct {
	TokenType       uint16
	Nonce           [NonceSize]byte
	ChallengeDigest [32]byte
	KeyID           KeyID
	Authenticator   [Nk]byte
}

// AuthenticatorInput is what the authenticator signs: every field but
// the authenticator, in order.
func (t *Token) AuthenticatorInput() []byte {
	b := make([]byte, 0, 2+NonceSize+32+Nid)
	b = binary.BigEndian.AppendUint16(b, t.TokenType)
	b = append(b, t.Nonce[:]...)
	b = append(b, t.ChallengeDigest[:]...)
	return append(b, t.KeyID[:]...)
}

// Marshal encodes the token.
func (t *Token) Marshal() []byte {
	return append(t.AuthenticatorInput(), t.Authenticator[:]...)
}

// ParseToken decodes a token of type 0x0002.
func ParseToken(raw []byte) (*Token, error) {
	if len(raw) < 2 {
		return nil, fmt.Errorf("%w: token", ErrMalformed)
	}
	if typ := binary.BigEndian.Uint16(raw); typ != TokenTypeBlindRSA {
		return nil, ErrTokenType
	}
	if len(raw) != TokenSize {
		return nil, fmt.Errorf("%w: token of %d bytes, want %d", ErrMalformed, len(raw), TokenSize)
	}
	t := &Token{TokenType: TokenTypeBlindRSA}
	r := raw[2:]
	r = r[copy(t.Nonce[:], r):]
	r = r[copy(t.ChallengeDigest[:], r):]
	r = r[copy(t.KeyID[:], r):]
	copy(t.Authenticator[:], r)
	return t, nil
}

// pssOptions are RFC 9578 §6.4's verification parameters.
var pssOptions = &rsa.PSSOptions{SaltLength: saltLen, Hash: crypto.SHA384}

// Verify checks that t was issued under k: its key id is k's, and its
// authenticator is an RSASSA-PSS (SHA-384, MGF1-SHA-384, 48-byte salt)
// signature by k over the rest of the token (RFC 9578 §6.4). Only the
// standard library is involved.
func (k *PublicKey) Verify(t *Token) error {
	if t.TokenType != TokenTypeBlindRSA {
		return ErrTokenType
	}
	if t.KeyID != k.id {
		return ErrWrongKey
	}
	h := sha512.Sum384(t.AuthenticatorInput())
	if err := rsa.VerifyPSS(k.pk, crypto.SHA384, h[:], t.Authenticator[:], pssOptions); err != nil {
		return ErrBadToken
	}
	return nil
}

// b64 is the base64url encoding RFC 9577 mandates for header parameters
// and the directory: with padding.
var b64 = base64.URLEncoding

// decodeB64 accepts base64url with or without padding: senders are told
// to pad, and being lenient here costs nothing.
func decodeB64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
