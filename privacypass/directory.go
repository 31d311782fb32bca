package privacypass

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Directory is an issuer directory (RFC 9578 §4), as JSON.
type Directory struct {
	RequestURI string         `json:"issuer-request-uri"`
	TokenKeys  []DirectoryKey `json:"token-keys"`
}

// DirectoryKey is one entry of "token-keys".
type DirectoryKey struct {
	TokenType int    `json:"token-type"`
	TokenKey  string `json:"token-key"`            // base64url SPKI, padded
	NotBefore int64  `json:"not-before,omitempty"` // unix seconds; 0: none
}

// DatedKey is a token key of type 0x0002 with the time from which it is
// in use.
type DatedKey struct {
	Key       *PublicKey
	NotBefore time.Time // zero: no not-before
}

// Keys returns the directory's keys of type 0x0002 in its order of
// preference, skipping other token types. A type 0x0002 key that does not
// parse is an error: an issuer that publishes one is broken.
func (d *Directory) Keys() ([]DatedKey, error) {
	var out []DatedKey
	for i, k := range d.TokenKeys {
		if k.TokenType != int(TokenTypeBlindRSA) {
			continue
		}
		raw, err := decodeB64(k.TokenKey)
		if err != nil {
			return nil, fmt.Errorf("%w: token key %d is not base64url", ErrBadKey, i)
		}
		pk, err := ParsePublicKey(raw)
		if err != nil {
			return nil, fmt.Errorf("token key %d: %w", i, err)
		}
		dk := DatedKey{Key: pk}
		if k.NotBefore > 0 {
			dk.NotBefore = time.Unix(k.NotBefore, 0)
		}
		out = append(out, dk)
	}
	return out, nil
}

// IssuanceKey returns the key a client issues with at now: the first key
// (in the issuer's order of preference) without a not-before in the
// future (RFC 9578 §4).
func IssuanceKey(keys []DatedKey, now time.Time) (*PublicKey, bool) {
	for _, k := range keys {
		if !k.NotBefore.After(now) {
			return k.Key, true
		}
	}
	return nil, false
}

// Accepted returns the keys a redeemer accepts at now: of the keys whose
// not-before has passed, the newest two (docs/design.md §11: the current key
// and the previous one). A key without not-before counts as oldest.
func Accepted(keys []DatedKey, now time.Time) []DatedKey {
	var live []DatedKey
	for _, k := range keys {
		if !k.NotBefore.After(now) {
			live = append(live, k)
		}
	}
	sort.SliceStable(live, func(i, j int) bool { return live[i].NotBefore.After(live[j].NotBefore) })
	if len(live) > 2 {
		live = live[:2]
	}
	return live
}

// FetchDirectory reads the directory of the issuer at base (its origin,
// as in https://issuer.example) and resolves its request URI against the
// directory's URL.
func FetchDirectory(ctx context.Context, hc *http.Client, base string) (*Directory, string, error) {
	dirURL, err := DirectoryURL(base)
	if err != nil {
		return nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dirURL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("privacypass: directory request: %w", err)
	}
	req.Header.Set("Accept", MediaDirectory)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("privacypass: fetch the issuer directory: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("privacypass: the issuer directory answered %s", resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != MediaDirectory && mt != "application/json" {
		return nil, "", fmt.Errorf("privacypass: the issuer directory has media type %q", mt)
	}
	var d Directory
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d); err != nil {
		return nil, "", fmt.Errorf("privacypass: the issuer directory is not valid JSON: %w", err)
	}
	ref, err := url.Parse(d.RequestURI)
	if err != nil || d.RequestURI == "" {
		return nil, "", fmt.Errorf("privacypass: the issuer directory's issuer-request-uri is not a URL")
	}
	du, _ := url.Parse(dirURL)
	return &d, du.ResolveReference(ref).String(), nil
}

// DirectoryURL returns the well-known directory URL of an issuer URL.
func DirectoryURL(base string) (string, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("privacypass: issuer %q is not an http:// or https:// URL", base)
	}
	return u.Scheme + "://" + u.Host + WellKnownDirectory, nil
}

// IssuerName returns the issuer_name challenges carry for an issuer URL:
// its authority, host and port (RFC 9577 §2.1.1.1).
func IssuerName(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || u.User != nil {
		return "", fmt.Errorf("privacypass: issuer %q has no host name", base)
	}
	return strings.ToLower(u.Host), nil
}
