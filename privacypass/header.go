package privacypass

import (
	"fmt"
	"strconv"
	"strings"
)

// Scheme is the HTTP authentication scheme of RFC 9577.
const Scheme = "PrivateToken"

// AuthChallenge is one challenge (or one set of credentials) of an
// authentication header: a scheme and its parameters, names in lower
// case. Token68 holds a token68 credential, when the scheme used one.
type AuthChallenge struct {
	Scheme  string
	Params  map[string]string
	Token68 string
}

// ParseAuth parses a WWW-Authenticate or Authorization field value into
// its challenges (RFC 9110 §11.6.1): schemes with auth-params (tokens or
// quoted strings) or a token68, separated by commas.
func ParseAuth(h string) ([]AuthChallenge, error) {
	p := authParser{s: h}
	var out []AuthChallenge
	for {
		p.skip(" \t,")
		if p.done() {
			return out, nil
		}
		scheme := p.token()
		if scheme == "" {
			return nil, fmt.Errorf("%w: authentication header: expected a scheme at byte %d", ErrMalformed, p.i)
		}
		c := AuthChallenge{Scheme: scheme, Params: map[string]string{}}
		first := true
	params:
		for {
			save := p.i
			p.skip(" \t")
			if first && p.i == save && !p.done() && p.s[p.i] != ',' {
				return nil, fmt.Errorf("%w: authentication header: no space after the scheme", ErrMalformed)
			}
			name := p.token()
			if name == "" {
				p.i = save
				break
			}
			afterName := p.i
			p.skip(" \t")
			if p.done() || p.s[p.i] != '=' {
				// Not a parameter: the next challenge's scheme.
				p.i = save
				break
			}
			p.i++
			p.skip(" \t")
			var val string
			switch {
			case !p.done() && p.s[p.i] == '"':
				v, err := p.quoted()
				if err != nil {
					return nil, err
				}
				val = v
			case !p.done() && isTChar(p.s[p.i]):
				val = p.token()
			default:
				// name followed by "=" and no value: a token68 with
				// padding, as in "Negotiate abc==".
				if !first {
					return nil, fmt.Errorf("%w: authentication header: parameter %q has no value", ErrMalformed, name)
				}
				p.i = afterName
				for !p.done() && p.s[p.i] == '=' {
					p.i++
				}
				c.Token68 = p.s[save:p.i]
				c.Token68 = strings.TrimLeft(c.Token68, " \t")
				p.skip(" \t")
				if !p.done() && p.s[p.i] == ',' {
					p.i++
				}
				break params
			}
			c.Params[strings.ToLower(name)] = val
			first = false
			p.skip(" \t")
			if p.done() {
				break
			}
			if p.s[p.i] != ',' {
				return nil, fmt.Errorf("%w: authentication header: expected a comma at byte %d", ErrMalformed, p.i)
			}
			p.i++
		}
		out = append(out, c)
	}
}

type authParser struct {
	s string
	i int
}

func (p *authParser) done() bool { return p.i >= len(p.s) }

func (p *authParser) skip(set string) {
	for !p.done() && strings.IndexByte(set, p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *authParser) token() string {
	start := p.i
	for !p.done() && isTChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func (p *authParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for !p.done() {
		c := p.s[p.i]
		switch {
		case c == '"':
			p.i++
			return b.String(), nil
		case c == '\\' && p.i+1 < len(p.s):
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		default:
			b.WriteByte(c)
			p.i++
		}
	}
	return "", fmt.Errorf("%w: authentication header: unterminated quoted string", ErrMalformed)
}

// isTChar reports whether c may appear in an RFC 9110 token.
func isTChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// ChallengeParams are the parameters of one PrivateToken challenge.
type ChallengeParams struct {
	Challenge []byte // the encoded TokenChallenge
	TokenKey  []byte // the token key's encoding; nil when absent
	MaxAge    int    // seconds; -1 when absent
}

// FormatChallenge renders a WWW-Authenticate challenge of the
// PrivateToken scheme: base64url values with padding, quoted.
func FormatChallenge(p ChallengeParams) string {
	var b strings.Builder
	b.WriteString(Scheme + ` challenge="` + b64.EncodeToString(p.Challenge) + `"`)
	if p.TokenKey != nil {
		b.WriteString(`, token-key="` + b64.EncodeToString(p.TokenKey) + `"`)
	}
	if p.MaxAge >= 0 {
		b.WriteString(`, max-age="` + strconv.Itoa(p.MaxAge) + `"`)
	}
	return b.String()
}

// ParseChallenges returns the PrivateToken challenges of a
// WWW-Authenticate value, skipping other schemes (and, as RFC 9577 §2.1.3
// asks, ignoring unknown parameters). A PrivateToken challenge whose
// parameters do not decode is an error.
func ParseChallenges(h string) ([]ChallengeParams, error) {
	all, err := ParseAuth(h)
	if err != nil {
		return nil, err
	}
	var out []ChallengeParams
	for _, c := range all {
		if !strings.EqualFold(c.Scheme, Scheme) {
			continue
		}
		p := ChallengeParams{MaxAge: -1}
		v, ok := c.Params["challenge"]
		if !ok {
			return nil, fmt.Errorf("%w: PrivateToken challenge without its challenge parameter", ErrMalformed)
		}
		if p.Challenge, err = decodeB64(v); err != nil {
			return nil, fmt.Errorf("%w: PrivateToken challenge parameter is not base64url", ErrMalformed)
		}
		if v, ok := c.Params["token-key"]; ok {
			if p.TokenKey, err = decodeB64(v); err != nil {
				return nil, fmt.Errorf("%w: PrivateToken token-key parameter is not base64url", ErrMalformed)
			}
		}
		if v, ok := c.Params["max-age"]; ok {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%w: PrivateToken max-age is not a number of seconds", ErrMalformed)
			}
			p.MaxAge = n
		}
		out = append(out, p)
	}
	return out, nil
}

// FormatAuthorization renders the Authorization value that presents t.
func FormatAuthorization(t *Token) string {
	return Scheme + ` token="` + b64.EncodeToString(t.Marshal()) + `"`
}

// ParseAuthorization extracts the token of a PrivateToken Authorization
// value. ErrNoToken: the value carries no PrivateToken credentials;
// ErrMalformed or ErrTokenType: it carries something that is not a token
// of type 0x0002.
func ParseAuthorization(h string) (*Token, error) {
	if strings.TrimSpace(h) == "" {
		return nil, ErrNoToken
	}
	all, err := ParseAuth(h)
	if err != nil {
		return nil, err
	}
	for _, c := range all {
		if !strings.EqualFold(c.Scheme, Scheme) {
			continue
		}
		v, ok := c.Params["token"]
		if !ok {
			return nil, fmt.Errorf("%w: PrivateToken credentials without a token parameter", ErrMalformed)
		}
		raw, err := decodeB64(v)
		if err != nil {
			return nil, fmt.Errorf("%w: token is not base64url", ErrMalformed)
		}
		return ParseToken(raw)
	}
	return nil, ErrNoToken
}
