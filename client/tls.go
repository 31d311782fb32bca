package client

// TLS as the client sees it: the server's certificate is always
// verified, against the system's roots or, pinned, against the CAs of one
// file (blind --ca-file, BLIND_CA_FILE) for a deployment with its own CA.
// There is no switch to skip verification: a client that accepts any
// certificate hands its block IDs and proofs to whoever sits in between.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"time"
)

// NewHTTPClient returns the HTTP client NewRemote uses by default. With
// caFile empty it trusts the system's certificate authorities; otherwise
// it trusts only those in caFile (PEM), so that a certificate from any
// other CA, public or not, is refused.
func NewHTTPClient(caFile string) (*http.Client, error) {
	if caFile == "" {
		return newHTTPClient(nil), nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, &Error{Kind: KindLocalIO, Msg: "reading the CA file", Err: err}
	}
	return NewHTTPClientPEM(pem, "the CA file "+caFile)
}

// NewHTTPClientPEM is NewHTTPClient with the CAs' certificates given as
// PEM, e.g. as remembered with a session; from names where they came
// from, for the error.
func NewHTTPClientPEM(pem []byte, from string) (*http.Client, error) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &Error{Kind: KindInvalid, Msg: from + " holds no PEM certificate"}
	}
	return newHTTPClient(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}

// newHTTPClient is the default client with tc (nil: Go's defaults, which
// verify against the system's roots) as its TLS configuration.
func newHTTPClient(tc *tls.Config) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:       http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			// Each get or put keeps up to Parallel requests in flight, and
			// a process may run several (blind serve webdav: a client's
			// ranged reads and uploads at once): a connection beyond the
			// idle ones is closed after its request, and the next one
			// dials again. An idle connection costs two small buffers.
			MaxIdleConnsPerHost: 8 * DefaultParallel,
			IdleConnTimeout:     60 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			TLSClientConfig:     tc,
			ForceAttemptHTTP2:   true,
		},
	}
}

// certificateError returns a network error that says what to do when
// err is a failed verification of the server's certificate, else nil. It
// is not retried: a retry meets the same certificate.
func certificateError(err error) error {
	var (
		unknown  x509.UnknownAuthorityError
		invalid  x509.CertificateInvalidError
		hostname x509.HostnameError
		verify   *tls.CertificateVerificationError
	)
	// The verification error wraps the x509 one: ask for the precise
	// kinds first.
	switch {
	case errors.As(err, &hostname):
		return &Error{Kind: KindNetwork, Msg: "the server's TLS certificate is for another name than the server address", Err: stripURL(err)}
	case errors.As(err, &invalid):
		return &Error{Kind: KindNetwork, Msg: "the server's TLS certificate is not valid (expired, or not for serving)", Err: stripURL(err)}
	case errors.As(err, &unknown), errors.As(err, &verify):
		return &Error{Kind: KindNetwork, Msg: "the server's TLS certificate is not signed by a trusted authority (for a deployment's own CA, give its certificate with --ca-file or BLIND_CA_FILE)", Err: stripURL(err)}
	}
	return nil
}
