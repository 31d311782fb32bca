package main

import (
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/internal/cli"
)

// A session belongs to one server, with the certificate authorities it
// was logged in with: the commands that use it talk to that server and
// trust those CAs without being told again.

// pinSession makes the run use the session's server and CAs. A --server
// (or BLIND_SERVER) that names another server is an error, never ignored:
// the user meant another server, and the session cannot open an account
// there. A --ca-file given now is trusted instead of the session's CAs,
// and remembered in their place once the command succeeds (a rotated CA).
func (a *app) pinSession(s *session) error {
	if a.given["server"] && !sameServer(a.g.server, s.Server) {
		return cli.Usagef("the session is for the server %s, not %s: leave out --server and BLIND_SERVER to use the session's server, or run 'blind logout' first and log in to the other one",
			s.Server, a.g.server)
	}
	if !a.given["ca-file"] && s.CAPEM != "" {
		a.caPEM = []byte(s.CAPEM)
	}
	return nil
}

// httpClient trusts the CAs of --ca-file (read now, and kept for the
// session), else the session's, else the system's.
func (a *app) httpClient() (*http.Client, error) {
	if a.g.caFile != "" {
		pem, err := os.ReadFile(a.g.caFile)
		if err != nil {
			return nil, &client.Error{Kind: client.KindLocalIO, Msg: "reading the CA file", Err: err}
		}
		hc, err := client.NewHTTPClientPEM(pem, "the CA file "+a.g.caFile)
		if err != nil {
			return nil, err
		}
		a.caPEM = pem
		return hc, nil
	}
	if a.caPEM != nil {
		return client.NewHTTPClientPEM(a.caPEM, "the session's CA certificates")
	}
	return client.NewHTTPClient("")
}

// sameServer compares two server addresses as URLs: scheme and host case
// and a trailing slash do not make another server.
func sameServer(x, y string) bool {
	return normalServer(x) == normalServer(y)
}

func normalServer(s string) string {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(s), "/"))
	if err != nil {
		return s
	}
	u.Scheme = strings.ToLower(u.Scheme)
	u.Host = strings.ToLower(u.Host)
	return u.String()
}
