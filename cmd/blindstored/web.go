package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/blindstore/blindstore/blobstore/httpapi"
	"github.com/blindstore/blindstore/internal/webapp"
)

// originList is a repeatable flag of web origins (scheme://host[:port]);
// each value may also hold several, separated by commas or spaces, which
// is how the environment fallback lists them.
type originList []string

func (o *originList) String() string { return strings.Join(*o, ",") }

func (o *originList) Set(v string) error {
	for _, s := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		origin, err := parseOrigin(s)
		if err != nil {
			return err
		}
		*o = append(*o, origin)
	}
	return nil
}

// parseOrigin checks that s is an origin as a browser sends it in the
// Origin header, and returns it so: lower case, no trailing slash.
func parseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	bad := err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.Opaque != ""
	if bad {
		return "", fmt.Errorf("%q is not an origin: want scheme://host[:port], such as https://app.example", s)
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}

// webFlags are serve's browser-facing options: the app (--web) and the
// origins of apps elsewhere that may call the API (--cors-origin).
type webFlags struct {
	web     bool
	origins originList
}

func (f *webFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&f.web, "web", false, "serve the browser app at / beside the API (its files are built into the binary)")
	fs.Var(&f.origins, "cors-origin", "let browser apps on this `origin` (https://app.example) call the API; repeat it, or separate several with commas")
}

func (f *webFlags) apply(opt *httpapi.Options) { opt.CORSOrigins = f.origins }

// wrap puts the app in front of api when --web is on. issuer is the
// token issuer's URL on a server that charges: the app's wallet fetches
// tokens from it, so its origin joins the app's connect-src.
func (f *webFlags) wrap(api http.Handler, issuer string) (http.Handler, error) {
	if !f.web {
		return api, nil
	}
	var connect []string
	if issuer != "" {
		o, err := issuerOrigin(issuer)
		if err != nil {
			return nil, err
		}
		connect = append(connect, o)
	}
	app, err := webapp.New(api, connect)
	if err != nil {
		return nil, err
	}
	return app, nil
}

func issuerOrigin(issuer string) (string, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return "", usageError{fmt.Errorf("--token-issuer %q: not a URL", issuer)}
	}
	return u.Scheme + "://" + strings.ToLower(u.Host), nil
}
