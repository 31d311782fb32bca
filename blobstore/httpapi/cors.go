package httpapi

import (
	"net/http"
	"slices"
	"strings"
)

// CORS for apps served from another origin (Options.CORSOrigins). A
// browser app on a listed origin may call the API with fetch: every
// answer to it carries Access-Control-Allow-Origin, and its preflights
// (OPTIONS with Access-Control-Request-Method, for a method the path
// serves) are answered 204 before routing. Any other origin gets no CORS
// header at all, so the browser keeps the answer from its script, and
// its preflight reaches the router and answers 405 as every OPTIONS
// does. No credentials: the API sets no cookies, and Authorization
// carries a token the script holds itself.

// corsExposed are the response headers a script may read beyond the
// CORS-safelisted ones: the ETag of a read or write, the wait of a 429
// or 503, and the Privacy Pass challenge of a 401.
const corsExposed = "ETag, Retry-After, WWW-Authenticate"

// corsAllowHeaders are the request headers the clients send (client's
// remote.go and the TypeScript client's remote.ts).
const corsAllowHeaders = "Authorization, Blind-Proof, Content-Type, If-Match, If-None-Match"

// corsMaxAge lets a browser keep a preflight for ten minutes.
const corsMaxAge = "600"

// cors holds the allowed origins, as browsers send them (scheme, host
// and port, lower case, no trailing slash), and which methods each path
// serves: a preflight for any other is not answered.
type cors struct {
	origins []string
	serves  func(method, path string) bool
}

func newCORS(origins []string, serves func(method, path string) bool) *cors {
	if len(origins) == 0 {
		return nil
	}
	c := &cors{serves: serves}
	for _, o := range origins {
		c.origins = append(c.origins, NormalizeOrigin(o))
	}
	return c
}

// NormalizeOrigin is an origin as a browser sends it in the Origin
// header: lower case and without a trailing slash.
func NormalizeOrigin(o string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
}

// handle adds the CORS headers to an answer for an allowed origin, and
// answers a preflight itself; it reports whether it did. A nil c allows
// no origin.
func (c *cors) handle(w http.ResponseWriter, r *http.Request) bool {
	if c == nil {
		return false
	}
	h := w.Header()
	// Caches must not hand one origin's answer to another.
	h.Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !slices.Contains(c.origins, strings.ToLower(origin)) {
		return false
	}
	h.Set("Access-Control-Allow-Origin", origin)
	want := r.Header.Get("Access-Control-Request-Method")
	if r.Method != http.MethodOptions || want == "" {
		h.Set("Access-Control-Expose-Headers", corsExposed)
		return false
	}
	if !c.serves(want, r.URL.Path) {
		// Not a method of this path: the router's 405 says so.
		return false
	}
	h.Add("Vary", "Access-Control-Request-Method")
	h.Add("Vary", "Access-Control-Request-Headers")
	h.Set("Access-Control-Allow-Methods", want)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	w.WriteHeader(http.StatusNoContent)
	return true
}

// CORS wraps next, a server other than the API (the token issuer, whose
// wallet requests a browser app on another origin makes too), with the
// same CORS answers for origins, for preflights of the methods listed.
func CORS(origins []string, methods []string, next http.Handler) http.Handler {
	c := newCORS(origins, func(m, _ string) bool { return slices.Contains(methods, m) })
	if c == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !c.handle(w, r) {
			next.ServeHTTP(w, r)
		}
	})
}
