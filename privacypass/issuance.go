package privacypass

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/cloudflare/circl/blindsign/blindrsa"
)

// Media types of issuance (RFC 9578 §8.3).
const (
	MediaTokenRequest  = "application/private-token-request"
	MediaTokenResponse = "application/private-token-response"
	MediaDirectory     = "application/private-token-issuer-directory"
	// WellKnownDirectory is where an issuer publishes its directory.
	WellKnownDirectory = "/.well-known/private-token-issuer-directory"
)

// variant is the blind RSA variant of token type 0x0002: PSS with a
// 48-byte salt, and PrepareIdentity (no random prefix), RFC 9578 §6.
const variant = blindrsa.SHA384PSSDeterministic

// TokenRequestSize is the size of a TokenRequest of type 0x0002.
const TokenRequestSize = 2 + 1 + Nk

// TokenRequest is RFC 9578 §6.1's request:
//
//	struct {
//	    uint16_t token_type = 0x0002;
//	    uint8_t truncated_token_key_id;
//	    uint8_t blinded_msg[Nk];
//	} TokenRequest;
type TokenRequest struct {
	TruncatedKeyID byte
	BlindedMsg     [Nk]byte
}

// Marshal encodes the request.
func (r *TokenRequest) Marshal() []byte {
	b := make([]byte, 0, TokenRequestSize)
	b = binary.BigEndian.AppendUint16(b, TokenTypeBlindRSA)
	b = append(b, r.TruncatedKeyID)
	return append(b, r.BlindedMsg[:]...)
}

// ParseTokenRequest decodes a TokenRequest of type 0x0002.
func ParseTokenRequest(raw []byte) (*TokenRequest, error) {
	if len(raw) < 2 {
		return nil, fmt.Errorf("%w: token request", ErrMalformed)
	}
	if binary.BigEndian.Uint16(raw) != TokenTypeBlindRSA {
		return nil, ErrTokenType
	}
	if len(raw) != TokenRequestSize {
		return nil, fmt.Errorf("%w: token request of %d bytes, want %d", ErrMalformed, len(raw), TokenRequestSize)
	}
	r := &TokenRequest{TruncatedKeyID: raw[2]}
	copy(r.BlindedMsg[:], raw[3:])
	return r, nil
}

// Pending is a client's issuance in progress: what finalizing the
// issuer's response needs. It is secret until the token is spent.
type Pending struct {
	key    *PublicKey
	client blindrsa.Client
	state  blindrsa.State
	token  Token // all but the authenticator
}

// NewTokenRequest starts an issuance for the encoded challenge under key
// (RFC 9578 §6.1): a fresh nonce, the challenge's digest, the key id, and
// the blinded token input. rnd nil means crypto/rand.
func NewTokenRequest(rnd io.Reader, key *PublicKey, challenge []byte) (*TokenRequest, *Pending, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	c, err := blindrsa.NewClient(variant, key.pk)
	if err != nil {
		return nil, nil, fmt.Errorf("privacypass: blind RSA client: %w", err)
	}
	p := &Pending{key: key, client: c}
	p.token.TokenType = TokenTypeBlindRSA
	if _, err := io.ReadFull(rnd, p.token.Nonce[:]); err != nil {
		return nil, nil, fmt.Errorf("privacypass: nonce: %w", err)
	}
	p.token.ChallengeDigest = ChallengeDigest(challenge)
	p.token.KeyID = key.id
	blinded, state, err := c.Blind(rnd, p.token.AuthenticatorInput())
	if err != nil {
		return nil, nil, fmt.Errorf("privacypass: blind: %w", err)
	}
	if len(blinded) != Nk {
		return nil, nil, fmt.Errorf("privacypass: blinded message of %d bytes", len(blinded))
	}
	p.state = state
	req := &TokenRequest{TruncatedKeyID: key.id.Truncated()}
	copy(req.BlindedMsg[:], blinded)
	return req, p, nil
}

// Finalize turns the issuer's TokenResponse (blind_sig[Nk]) into a token,
// checking that it verifies under the key the request was made for: an
// issuer that signed with another key is caught here.
func (p *Pending) Finalize(response []byte) (*Token, error) {
	if len(response) != Nk {
		return nil, fmt.Errorf("%w: token response of %d bytes, want %d", ErrMalformed, len(response), Nk)
	}
	sig, err := p.client.Finalize(p.state, response)
	if err != nil {
		return nil, fmt.Errorf("%w: the issuer's signature does not verify under the token key", ErrBadToken)
	}
	t := p.token
	copy(t.Authenticator[:], sig)
	if err := p.key.Verify(&t); err != nil {
		return nil, err
	}
	return &t, nil
}

// Signer is an issuer's private token key.
type Signer struct {
	signer blindrsa.Signer
	pub    *PublicKey
}

// NewSigner wraps a 2048-bit RSA private key.
func NewSigner(sk *rsa.PrivateKey) (*Signer, error) {
	pub, err := MarshalPublicKey(&sk.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Signer{signer: blindrsa.NewSigner(sk), pub: pub}, nil
}

// GenerateSigner makes a new 2048-bit key.
func GenerateSigner() (*Signer, *rsa.PrivateKey, error) {
	sk, err := rsa.GenerateKey(rand.Reader, 8*Nk)
	if err != nil {
		return nil, nil, fmt.Errorf("privacypass: generate token key: %w", err)
	}
	s, err := NewSigner(sk)
	return s, sk, err
}

// Public returns the signer's token key.
func (s *Signer) Public() *PublicKey { return s.pub }

// Sign answers a TokenRequest with the blind signature (RFC 9578 §6.2).
// The caller has checked the request's key id against this key.
func (s *Signer) Sign(req *TokenRequest) ([]byte, error) {
	if req.TruncatedKeyID != s.pub.id.Truncated() {
		return nil, ErrUnknownKey
	}
	sig, err := s.signer.BlindSign(req.BlindedMsg[:])
	if err != nil {
		return nil, fmt.Errorf("%w: blinded message refused: %v", ErrMalformed, err)
	}
	return sig, nil
}
