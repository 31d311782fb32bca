package privacypass

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
)

// The vectors in testdata are copied, as data, from the IETF documents:
// rfc9578_type2.json from RFC 9578 Appendix A.2 (Issuance Protocol 2,
// Blind RSA 2048) and rfc9577.json from RFC 9577 Appendix A (challenge
// and redemption structures, HTTP headers).

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("vector hex: %v", err)
	}
	return b
}

func loadJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// TestRFC9578BlindRSAVectors runs every step of issuance and redemption
// that is deterministic against RFC 9578's type 0x0002 vectors: the key's
// SPKI and id, the TokenRequest framing, the issuer's blind signature,
// the client's unblinding with the vector's blind, the Token framing, and
// verification with the standard library.
func TestRFC9578BlindRSAVectors(t *testing.T) {
	var f struct {
		Vectors []map[string]string `json:"vectors"`
	}
	loadJSON(t, "testdata/rfc9578_type2.json", &f)
	if len(f.Vectors) != 5 {
		t.Fatalf("%d vectors, want the RFC's 5", len(f.Vectors))
	}
	for i, v := range f.Vectors {
		t.Run(strconv.Itoa(i+1), func(t *testing.T) {
			blk, _ := pem.Decode(unhex(t, v["skS"]))
			if blk == nil {
				t.Fatal("skS is not PEM")
			}
			anyKey, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			sk := anyKey.(*rsa.PrivateKey)
			pkS := unhex(t, v["pkS"])

			// The token key: our encoding of the key is byte for byte
			// the vector's, and parses back to the same key.
			signer, err := NewSigner(sk)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(signer.Public().SPKI(), pkS) {
				t.Fatalf("SPKI differs:\n got %x\nwant %x", signer.Public().SPKI(), pkS)
			}
			pk, err := ParsePublicKey(pkS)
			if err != nil {
				t.Fatal(err)
			}
			if pk.ID() != sha256.Sum256(pkS) || pk.RSA().N.Cmp(sk.N) != 0 {
				t.Fatal("parsed key differs")
			}

			// TokenRequest framing.
			reqRaw := unhex(t, v["token_request"])
			req, err := ParseTokenRequest(reqRaw)
			if err != nil {
				t.Fatal(err)
			}
			if req.TruncatedKeyID != pk.ID().Truncated() {
				t.Fatalf("truncated key id %x, want %x", req.TruncatedKeyID, pk.ID().Truncated())
			}
			if !bytes.Equal(req.Marshal(), reqRaw) {
				t.Fatal("TokenRequest does not re-encode to the vector")
			}

			// The issuer's blind signature is deterministic.
			resp, err := signer.Sign(req)
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, v["token_response"]); !bytes.Equal(resp, want) {
				t.Fatalf("blind signature differs:\n got %x\nwant %x", resp, want)
			}

			// The Token framing.
			tokRaw := unhex(t, v["token"])
			tok, err := ParseToken(tokRaw)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(tok.Marshal(), tokRaw) {
				t.Fatal("Token does not re-encode to the vector")
			}
			if !bytes.Equal(tok.Nonce[:], unhex(t, v["nonce"])) {
				t.Fatal("nonce differs")
			}
			challenge := unhex(t, v["token_challenge"])
			if tok.ChallengeDigest != ChallengeDigest(challenge) {
				t.Fatal("challenge_digest is not SHA-256 of the vector's challenge")
			}
			if _, err := ParseChallenge(challenge); err != nil {
				t.Fatalf("the vector's TokenChallenge: %v", err)
			}
			if tok.KeyID != pk.ID() {
				t.Fatal("token_key_id is not SHA-256 of the SPKI")
			}

			// Unblinding: authenticator = blind_sig × blind⁻¹ mod n, and
			// the blinded message was the PSS encoding of the token input
			// times blind^e.
			n := sk.N
			r := new(big.Int).SetBytes(unhex(t, v["blind"]))
			rInv := new(big.Int).ModInverse(r, n)
			s := new(big.Int).Mul(new(big.Int).SetBytes(resp), rInv)
			s.Mod(s, n)
			if got := s.FillBytes(make([]byte, Nk)); !bytes.Equal(got, tok.Authenticator[:]) {
				t.Fatal("unblinded signature is not the token's authenticator")
			}
			m := new(big.Int).Exp(s, big.NewInt(int64(sk.E)), n)
			blinded := new(big.Int).Mul(m, new(big.Int).Exp(r, big.NewInt(int64(sk.E)), n))
			blinded.Mod(blinded, n)
			if got := blinded.FillBytes(make([]byte, Nk)); !bytes.Equal(got, req.BlindedMsg[:]) {
				t.Fatal("blinded message is not encode(token input) × blind^e")
			}

			// Redemption: crypto/rsa alone verifies the token, and any
			// change to it breaks the signature.
			if err := pk.Verify(tok); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			for _, off := range []int{2, 2 + NonceSize, 2 + NonceSize + 32 + Nid + 7} {
				bad := bytes.Clone(tokRaw)
				bad[off] ^= 1
				bt, _ := ParseToken(bad)
				if err := pk.Verify(bt); err == nil {
					t.Fatalf("a token changed at byte %d verifies", off)
				}
			}
		})
	}
}

// TestRFC9577ChallengeVectors encodes each vector's TokenChallenge and
// checks the AuthenticatorInput built from it, byte for byte.
func TestRFC9577ChallengeVectors(t *testing.T) {
	var f struct {
		Structures []map[string]string `json:"structures"`
	}
	loadJSON(t, "testdata/rfc9577.json", &f)
	if len(f.Structures) != 6 {
		t.Fatalf("%d vectors, want the RFC's 6", len(f.Structures))
	}
	for i, v := range f.Structures {
		want := unhex(t, v["token_authenticator_input"])
		typ, _ := strconv.ParseUint(v["token_type"], 16, 16)
		if typ != uint64(TokenTypeBlindRSA) {
			// The greasing vector: a type we do not speak is refused
			// as such, not as a malformed token.
			if _, err := ParseToken(want); !errors.Is(err, ErrTokenType) {
				t.Errorf("vector %d: token type %#04x parsed with %v, want ErrTokenType", i+1, typ, err)
			}
			continue
		}
		c := Challenge{TokenType: uint16(typ), IssuerName: string(unhex(t, v["issuer_name"])),
			RedemptionContext: unhex(t, v["redemption_context"]), OriginInfo: string(unhex(t, v["origin_info"]))}
		enc, err := c.Marshal()
		if err != nil {
			t.Fatalf("vector %d: %v", i+1, err)
		}
		back, err := ParseChallenge(enc)
		if err != nil || back.IssuerName != c.IssuerName || back.OriginInfo != c.OriginInfo || !bytes.Equal(back.RedemptionContext, c.RedemptionContext) {
			t.Fatalf("vector %d: challenge does not round-trip: %+v, %v", i+1, back, err)
		}
		tok := Token{TokenType: TokenTypeBlindRSA, ChallengeDigest: ChallengeDigest(enc)}
		copy(tok.Nonce[:], unhex(t, v["nonce"]))
		copy(tok.KeyID[:], unhex(t, v["token_key_id"]))
		if got := tok.AuthenticatorInput(); !bytes.Equal(got, want) {
			t.Errorf("vector %d: authenticator input\n got %x\nwant %x", i+1, got, want)
		}
	}
}

// TestRFC9577HeaderVectors parses each vector's WWW-Authenticate value:
// PrivateToken challenges in order, other schemes and unknown parameters
// ignored, values exactly the vector's.
func TestRFC9577HeaderVectors(t *testing.T) {
	var f struct {
		Headers []struct {
			Challenges []map[string]string `json:"challenges"`
			Header     string              `json:"header"`
		} `json:"headers"`
	}
	loadJSON(t, "testdata/rfc9577.json", &f)
	if len(f.Headers) != 3 {
		t.Fatalf("%d header vectors, want the RFC's 3", len(f.Headers))
	}
	for i, h := range f.Headers {
		got, err := ParseChallenges(h.Header)
		if err != nil {
			t.Fatalf("vector %d: %v", i+1, err)
		}
		if len(got) != len(h.Challenges) {
			t.Fatalf("vector %d: %d PrivateToken challenges, want %d", i+1, len(got), len(h.Challenges))
		}
		for j, want := range h.Challenges {
			g := got[j]
			if !bytes.Equal(g.Challenge, unhex(t, want["token-challenge"])) {
				t.Errorf("vector %d challenge %d: challenge differs", i+1, j)
			}
			if !bytes.Equal(g.TokenKey, unhex(t, want["token-key"])) {
				t.Errorf("vector %d challenge %d: token-key differs", i+1, j)
			}
			typ, _ := strconv.ParseUint(strings.TrimPrefix(want["token-type"], "0x"), 16, 16)
			if binary.BigEndian.Uint16(g.Challenge) != uint16(typ) {
				t.Errorf("vector %d challenge %d: token type %x, want %x", i+1, j, g.Challenge[:2], typ)
			}
			wantAge := -1
			if a, ok := want["max-age"]; ok {
				wantAge, _ = strconv.Atoi(a)
			}
			if g.MaxAge != wantAge {
				t.Errorf("vector %d challenge %d: max-age %d, want %d", i+1, j, g.MaxAge, wantAge)
			}
			if typ == uint64(TokenTypeBlindRSA) {
				if _, err := ParsePublicKey(g.TokenKey); err != nil {
					t.Errorf("vector %d challenge %d: token-key: %v", i+1, j, err)
				}
				if _, err := ParseChallenge(g.Challenge); err != nil {
					t.Errorf("vector %d challenge %d: %v", i+1, j, err)
				}
			}
		}
		// What we write, we read back.
		var parts []string
		for _, c := range got {
			parts = append(parts, FormatChallenge(c))
		}
		again, err := ParseChallenges(strings.Join(parts, ", "))
		if err != nil || len(again) != len(got) {
			t.Fatalf("vector %d: re-encoded header: %d challenges, %v", i+1, len(again), err)
		}
		for j := range got {
			if !bytes.Equal(again[j].Challenge, got[j].Challenge) || !bytes.Equal(again[j].TokenKey, got[j].TokenKey) || again[j].MaxAge != got[j].MaxAge {
				t.Errorf("vector %d challenge %d does not round-trip", i+1, j)
			}
		}
	}
}
