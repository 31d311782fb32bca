package privacypass_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"testing"

	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/privacypass/issuer"
)

// TestIssuerChargesOnlySignedTokens: a client that fetches several tokens
// sends one token request per token. One whose blinded message is not
// below the key's modulus answers 422 and costs the invite nothing; the
// others in the same run are issued and cost one each, whatever their
// order, and an invalid request is refused as such even once the
// allotment is used up.
func TestIssuerChargesOnlySignedTokens(t *testing.T) {
	s := newStack(t)
	ctx := context.Background()
	code, err := issuer.CreateInvite(s.dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	ic, reqURL, key := s.client(t, code)
	// Two blinded messages no RSA signer may sign: the modulus itself and
	// the largest Nk-byte number.
	atModulus := &privacypass.TokenRequest{TruncatedKeyID: key.ID().Truncated()}
	key.RSA().N.FillBytes(atModulus.BlindedMsg[:])
	allOnes := &privacypass.TokenRequest{TruncatedKeyID: key.ID().Truncated()}
	for i := range allOnes.BlindedMsg {
		allOnes.BlindedMsg[i] = 0xff
	}
	if new(big.Int).SetBytes(allOnes.BlindedMsg[:]).Cmp(key.RSA().N) <= 0 {
		t.Fatal("test setup: all ones is not above the modulus")
	}
	invalid := func(req *privacypass.TokenRequest) {
		t.Helper()
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, reqURL, bytes.NewReader(req.Marshal()))
		if err != nil {
			t.Fatal(err)
		}
		hr.Header.Set("Content-Type", privacypass.MediaTokenRequest)
		hr.Header.Set("Authorization", "Bearer "+code)
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var p struct{ Code string }
		_ = json.NewDecoder(resp.Body).Decode(&p)
		if resp.StatusCode != http.StatusUnprocessableEntity || p.Code != "bad_token_request" {
			t.Fatalf("invalid blinded message: %d %q, want 422 bad_token_request", resp.StatusCode, p.Code)
		}
	}
	valid := func() {
		t.Helper()
		tok, err := ic.Issue(ctx, reqURL, key, s.redeemer.Challenge())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.redeem(tok); err != nil {
			t.Fatalf("an issued token does not redeem: %v", err)
		}
	}
	left := func(want int) {
		t.Helper()
		a, err := ic.Allotment(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if a.Left != want {
			t.Fatalf("%d tokens left, want %d", a.Left, want)
		}
	}
	valid()
	invalid(atModulus)
	valid()
	invalid(allOnes)
	left(1)
	valid()
	left(0)
	invalid(atModulus)
	if _, err := ic.Issue(ctx, reqURL, key, s.redeemer.Challenge()); !errors.Is(err, privacypass.ErrAllotmentUsed) {
		t.Fatalf("a fourth token: %v, want the allotment used up", err)
	}
}
