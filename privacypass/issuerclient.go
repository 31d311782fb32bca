package privacypass

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Errors an issuer answers with.
var (
	ErrInviteUnknown = errors.New("privacypass: the issuer does not know this invite code")
	ErrAllotmentUsed = errors.New("privacypass: this invite's tokens for the period are all issued")
	ErrIssuerRefused = errors.New("privacypass: the issuer refused the token request")
)

// IssuerClient talks to a blindstore issuer on behalf of an invite's
// holder: directory, allotment and issuance. Its requests carry the
// invite code and blinded messages only.
type IssuerClient struct {
	URL    string // the issuer's URL
	Invite string
	HTTP   *http.Client
}

// Directory fetches the issuer's directory and resolves its request URI.
func (c *IssuerClient) Directory(ctx context.Context) (*Directory, string, error) {
	return FetchDirectory(ctx, c.HTTP, c.URL)
}

func (c *IssuerClient) endpoint(path string) (string, error) {
	u, err := url.Parse(strings.TrimRight(c.URL, "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("privacypass: issuer %q is not a URL", c.URL)
	}
	return u.Scheme + "://" + u.Host + path, nil
}

// Allotment asks how many tokens the invite has left this period.
func (c *IssuerClient) Allotment(ctx context.Context) (*Allotment, error) {
	u, err := c.endpoint(AllotmentPath)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a Allotment
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&a); err != nil {
		return nil, fmt.Errorf("privacypass: the issuer's allotment is not valid JSON: %w", err)
	}
	return &a, nil
}

// Issue runs one issuance (RFC 9578 §6) for the encoded challenge under
// key at the request URL, and returns the verified token.
func (c *IssuerClient) Issue(ctx context.Context, requestURL string, key *PublicKey, challenge []byte) (*Token, error) {
	treq, pending, err := NewTokenRequest(nil, key, challenge)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, requestURL, bytes.NewReader(treq.Marshal()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", MediaTokenRequest)
	req.Header.Set("Accept", MediaTokenResponse)
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != MediaTokenResponse {
		return nil, fmt.Errorf("%w: the answer has media type %q", ErrIssuerRefused, mt)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, Nk+1))
	if err != nil {
		return nil, fmt.Errorf("privacypass: read the issuer's answer: %w", err)
	}
	return pending.Finalize(body)
}

// send sends req with the invite as its bearer token, and returns the
// answer if the issuer accepted the request (200), for the caller to
// read and close; any other answer is the issuer's error.
func (c *IssuerClient) send(req *http.Request) (*http.Response, error) {
	req.Header.Set("Authorization", "Bearer "+NormalizeInvite(c.Invite))
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("privacypass: reach the issuer: %w", stripURL(err))
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, issuerError(resp)
	}
	return resp, nil
}

func issuerError(resp *http.Response) error {
	var p struct {
		Code   string `json:"code"`
		Detail string `json:"detail"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p)
	switch {
	case resp.StatusCode == http.StatusUnauthorized:
		return ErrInviteUnknown
	case resp.StatusCode == http.StatusTooManyRequests && p.Code == "allotment_used":
		return ErrAllotmentUsed
	}
	return fmt.Errorf("%w: %s (%s)", ErrIssuerRefused, resp.Status, p.Code)
}

// stripURL drops the request URL from a *url.Error, keeping the cause.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
