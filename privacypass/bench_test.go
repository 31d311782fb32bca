package privacypass_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"

	"github.com/blindstore/blindstore/privacypass"
	"github.com/blindstore/blindstore/privacypass/issuer"
)

// authorization is the Authorization value of one token the stack's
// issuer issued for its redeemer's challenge.
func (s *stack) authorization(b *testing.B) string {
	b.Helper()
	return privacypass.FormatAuthorization(s.tokens(b, 1, 1)[0])
}

// BenchmarkRedeemVerify is the blob server's CPU cost of a token: parse
// the Authorization value, check challenge and key, verify the RSA-PSS
// signature with crypto/rsa.
func BenchmarkRedeemVerify(b *testing.B) {
	s := newStack(b)
	h := s.authorization(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.redeemer.Check(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRedeemAndSpend adds the durable spend (bbolt, one fsync'd
// commit shared by the spends that arrive together) to the
// verification, with 1 redemption in flight (its latency) and 16, 64
// and 256 (a busy server's cost per token). Nonces are fresh for every spend; the token is one
// issuance, which costs the verification the same as distinct tokens
// would.
func BenchmarkRedeemAndSpend(b *testing.B) {
	for _, inFlight := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
			s := newStack(b)
			h := s.authorization(b)
			b.SetParallelism(max(1, inFlight/runtime.GOMAXPROCS(0)))
			if inFlight == 1 {
				runtime.GOMAXPROCS(1)
				defer runtime.GOMAXPROCS(runtime.NumCPU())
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					t, err := s.redeemer.Check(h)
					if err != nil {
						b.Error(err)
						return
					}
					var nonce [privacypass.NonceSize]byte
					rand.Read(nonce[:])
					if _, err := spentSet(s).Spend(context.Background(), t.KeyID, nonce); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func spentSet(s *stack) privacypass.SpentSet { return s.spent }

// BenchmarkIssuerSign is the issuer's cost of one token on one core: the
// blind RSA-2048 signature (with circl's blinding and check of the
// result). Its inverse is the issuance throughput per core.
func BenchmarkIssuerSign(b *testing.B) {
	signer, _, err := privacypass.GenerateSigner()
	if err != nil {
		b.Fatal(err)
	}
	req, _, err := privacypass.NewTokenRequest(nil, signer.Public(), []byte("challenge"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := signer.Sign(req); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s/core")
}

// BenchmarkClientIssuance is the client's cost of one token: blinding,
// and finalizing (unblinding and verifying) the issuer's answer.
func BenchmarkClientIssuance(b *testing.B) {
	signer, _, err := privacypass.GenerateSigner()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		req, p, err := privacypass.NewTokenRequest(nil, signer.Public(), []byte("challenge"))
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		sig, err := signer.Sign(req)
		b.StartTimer()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Finalize(sig); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIssuanceHTTP is issuance end to end on loopback: 8 clients
// blinding, the issuer counting each token against the invite (bbolt,
// shared commits) and signing, the clients finalizing. The issuer and
// the clients share the machine's cores.
func BenchmarkIssuanceHTTP(b *testing.B) {
	s := newStack(b)
	code, _ := issuer.CreateInvite(s.dir, 1<<30)
	ic, reqURL, key := s.client(b, code)
	ch := s.redeemer.Challenge()
	b.SetParallelism(max(1, 8/runtime.GOMAXPROCS(0)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ic.Issue(context.Background(), reqURL, key, ch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds()/float64(runtime.GOMAXPROCS(0)), "tokens/s/core")
}
