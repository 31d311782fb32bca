package privacypass

import "strings"

// The issuer's HTTP API as its clients see it: its routes, the answer of
// the allotment route, and the form of an invite code. The issuer itself,
// which keeps its state in bbolt, is package privacypass/issuer, so that
// a client build does not link a database.

// IssuerRequestPath is the issuer's issuance endpoint, and AllotmentPath
// the one that tells an invite's holder how many tokens are left.
const (
	IssuerRequestPath = "/token-request"
	AllotmentPath     = "/v1/allotment"
)

// NormalizeInvite removes the grouping and case of a typed invite code.
func NormalizeInvite(code string) string {
	return strings.ToLower(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
}

// Allotment is the answer of GET /v1/allotment.
type Allotment struct {
	Period          uint64 `json:"period"`
	TokensPerPeriod int    `json:"tokens_per_period"`
	Left            int    `json:"left"`
	NextPeriodAt    int64  `json:"next_period_at"` // unix seconds
	TokenKeyID      string `json:"token_key_id"`   // the key tokens are issued under now
}
