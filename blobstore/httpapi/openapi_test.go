package httpapi

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/blobstore/bolt"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// openapiOps returns "METHOD /path" → documented status codes.
func openapiOps(t *testing.T) (map[string][]int, map[string]any) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	ops := map[string][]int{}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		for method, op := range item.(map[string]any) {
			if method == "parameters" {
				continue
			}
			var codes []int
			for code := range op.(map[string]any)["responses"].(map[string]any) {
				n, err := strconv.Atoi(code)
				if err != nil {
					t.Fatalf("%s %s: response %q is not a status code", method, path, code)
				}
				codes = append(codes, n)
			}
			sort.Ints(codes)
			ops[strings.ToUpper(method)+" "+path] = codes
		}
	}
	return ops, doc
}

// docPath turns httprouter's /v1/blocks/:id into OpenAPI's /v1/blocks/{id}.
func docPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if strings.HasPrefix(s, ":") {
			parts[i] = "{" + s[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// TestOpenAPIMatchesRoutes checks openapi.json against the route table
// both ways, and each operation's responses against the statuses its
// route declares (TestMain checks those against what the tests saw).
func TestOpenAPIMatchesRoutes(t *testing.T) {
	ops, _ := openapiOps(t)
	table := map[string][]int{}
	for _, rt := range routeTable() {
		st := append(slices.Clone(rt.statuses), commonStatuses...)
		sort.Ints(st)
		table[rt.method+" "+docPath(rt.path)] = slices.Compact(st)
	}
	for op, codes := range table {
		doc, ok := ops[op]
		if !ok {
			t.Errorf("route %s is not in openapi.json", op)
			continue
		}
		if !slices.Equal(doc, codes) {
			t.Errorf("%s: openapi.json documents %v, the route answers %v", op, doc, codes)
		}
	}
	for op := range ops {
		if _, ok := table[op]; !ok {
			t.Errorf("openapi.json documents %s, which is not a route", op)
		}
	}
}

// TestOpenAPIMatchesRouter asks the real router, built by New, which
// method and path pairs it serves, for every documented path and every
// method, so a route registered outside the table cannot hide.
func TestOpenAPIMatchesRouter(t *testing.T) {
	ops, _ := openapiOps(t)
	key := make([]byte, bucketer.KeySize)
	bk, err := bucketer.New(bucketer.Config{Key: key, Period: time.Hour, Retention: 2})
	if err != nil {
		t.Fatal(err)
	}
	store, err := bolt.Open(filepath.Join(t.TempDir(), "s.db"), blobstore.Params{BlockSize: 4096, Fingerprint: bk.Fingerprint()})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	svc, err := blobstore.NewService(blobstore.ServiceConfig{Store: store, Bucketer: bk, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	a := New(svc, Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).(*api)
	methods := []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
	paths := map[string]bool{}
	for op := range ops {
		paths[strings.SplitN(op, " ", 2)[1]] = true
	}
	for p := range paths {
		concrete := strings.ReplaceAll(p, "{id}", wire.NewID().String())
		for _, m := range methods {
			h, _, _ := a.router.Lookup(m, concrete)
			_, documented := ops[m+" "+p]
			if (h != nil) != documented {
				t.Errorf("%s %s: router serves it %v, openapi.json documents it %v", m, p, h != nil, documented)
			}
		}
	}
}

// TestOpenAPIRefsResolve checks that every $ref points into the document
// and that every problem response names only codes the server sends.
func TestOpenAPIRefsResolve(t *testing.T) {
	_, doc := openapiOps(t)
	known := map[string]bool{}
	for _, c := range []string{wire.CodeBadID, wire.CodeBadSize, wire.CodeBadProof, wire.CodeBadETag, wire.CodeBadRequest,
		wire.CodeProofMismatch, wire.CodeNotFound, wire.CodePreconditionFailed, wire.CodeBodyTooLarge,
		wire.CodeHeaderTooLarge, wire.CodeUnsupportedMedia, wire.CodeRateLimited, wire.CodeUnavailable,
		wire.CodeTimeout, wire.CodeInternal, wire.CodeBatchTooLarge,
		wire.CodeTokenRequired, wire.CodeTokenInvalid, wire.CodeTokenSpent, wire.CodeFull} {
		known[c] = true
	}
	codeRe := regexp.MustCompile("`([a-z_]+)`")
	refs, problems := 0, 0
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				refs++
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if cur == nil {
					t.Errorf("$ref %s does not resolve", ref)
				}
			}
			if content, ok := v["content"].(map[string]any); ok && content["application/problem+json"] != nil {
				problems++
				desc, _ := v["description"].(string)
				_, list, ok := strings.Cut(desc, "Codes:")
				if !ok {
					t.Errorf("problem response %q names no codes", desc)
				}
				for _, m := range codeRe.FindAllStringSubmatch(list, -1) {
					if !known[m[1]] {
						t.Errorf("openapi.json names problem code %q, which the server never sends", m[1])
					}
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if refs == 0 || problems == 0 {
		t.Fatal("no $ref or problem response found: the walk is broken")
	}
}

// resolve follows a local $ref.
func resolve(doc map[string]any, v any) map[string]any {
	m, _ := v.(map[string]any)
	ref, ok := m["$ref"].(string)
	if !ok {
		return m
	}
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
		c, _ := cur.(map[string]any)
		cur = c[part]
	}
	return resolve(doc, cur)
}

// TestOpenAPIHeadMirrorsGet: every documented GET has a HEAD with the
// same statuses and response headers, and no body of its own.
func TestOpenAPIHeadMirrorsGet(t *testing.T) {
	_, doc := openapiOps(t)
	paths := doc["paths"].(map[string]any)
	for p, item := range paths {
		item := item.(map[string]any)
		get, ok := item["get"].(map[string]any)
		if !ok {
			continue
		}
		head, ok := item["head"].(map[string]any)
		if !ok {
			t.Errorf("%s: GET is documented, HEAD is not", p)
			continue
		}
		gr, hr := get["responses"].(map[string]any), head["responses"].(map[string]any)
		if len(gr) != len(hr) {
			t.Errorf("%s: GET documents %d responses, HEAD %d", p, len(gr), len(hr))
		}
		for code, g := range gr {
			h, ok := hr[code]
			if !ok {
				t.Errorf("%s: HEAD does not document %s", p, code)
				continue
			}
			gh, _ := resolve(doc, g)["headers"].(map[string]any)
			hh, _ := resolve(doc, h)["headers"].(map[string]any)
			for name := range gh {
				if _, ok := hh[name]; !ok {
					t.Errorf("%s %s: GET sends header %s, HEAD does not document it", p, code, name)
				}
			}
			if hm := h.(map[string]any); hm["$ref"] == nil && hm["content"] != nil {
				t.Errorf("%s %s: HEAD documents a body", p, code)
			}
		}
	}
}

// TestOpenAPIPatterns checks the documented patterns against the parsers
// the handlers use, and that headers, paths and JSON bodies share them.
func TestOpenAPIPatterns(t *testing.T) {
	_, doc := openapiOps(t)
	schemas := doc["components"].(map[string]any)["schemas"].(map[string]any)
	pattern := func(name string) *regexp.Regexp {
		s, _ := schemas[name].(map[string]any)["pattern"].(string)
		re, err := regexp.Compile(s)
		if err != nil || s == "" {
			t.Fatalf("schema %s: pattern %q: %v", name, s, err)
		}
		return re
	}
	id, proof, tags, etag := pattern("BlockID"), pattern("Proof"), pattern("EntityTags"), pattern("ETag")

	for _, s := range []string{wire.NewID().String(), strings.ToUpper(wire.NewID().String()),
		"6ba7b810-9dad-11d1-80b4-00c04fd430c8", "01890a5d-ac96-774b-bcce-b302099a8057", "0b5e3a6e-8c1f-4d5a-cb7e-2f1a3c4d5e6f",
		"0b5e3a6e8c1f4d5a9b7e2f1a3c4d5e6f", "{0b5e3a6e-8c1f-4d5a-9b7e-2f1a3c4d5e6f}", ""} {
		_, err := wire.ParseID(s)
		if id.MatchString(s) != (err == nil) {
			t.Errorf("id %q: pattern matches %v, ParseID error %v", s, id.MatchString(s), err)
		}
	}
	var w wire.WriteProof
	for _, s := range []string{wire.EncodeProof(w), wire.EncodeProof(w.Renew()), "short", wire.EncodeProof(w) + "A", "+/" + wire.EncodeProof(w)[2:]} {
		if _, err := wire.ParseProof(s); proof.MatchString(s) && err != nil {
			t.Errorf("proof %q matches the pattern, ParseProof refuses it: %v", s, err)
		}
	}
	if proof.MatchString("short") {
		t.Error("the proof pattern takes a short proof")
	}
	for _, s := range []string{`"a"`, `W/"a", "b"`, `"a,b"`, `""`, `"x"	,	"y"`, "*", `*, "a"`, "a", `"a`, `"a" "b"`, `W/ "a"`, `"a b"`} {
		_, star, err := parseEntityTags([]string{s})
		if tags.MatchString(s) && (err != nil || star) {
			t.Errorf("entity tags %q match the pattern, the parser refuses them (star %v, %v)", s, star, err)
		}
		if !tags.MatchString(s) && err == nil && !star {
			t.Errorf("entity tags %q: the parser takes them, the pattern does not", s)
		}
	}
	for range 20 {
		e := wire.ETagOf([]byte(wire.NewID().String())).String()
		if !etag.MatchString(e) || !tags.MatchString(e) {
			t.Fatalf("issued ETag %q does not match the documented patterns", e)
		}
	}
	for _, s := range []string{`"abc"`, `W/"AAAAAAAAAAAAAAAAAAAAAA"`, `"AAAAAAAAAAAAAAAAAAAAAAA"`} {
		if _, err := wire.ParseETag(s); etag.MatchString(s) != (err == nil) {
			t.Errorf("ETag %q: pattern matches %v, ParseETag error %v", s, etag.MatchString(s), err)
		}
	}

	// The same schema, by reference, in every place a value is carried.
	comp := doc["components"].(map[string]any)
	params := comp["parameters"].(map[string]any)
	refOf := func(v any) string { s, _ := v.(map[string]any)["$ref"].(string); return s }
	item := func(schema string) map[string]any {
		return schemas[schema].(map[string]any)["properties"].(map[string]any)["blocks"].(map[string]any)["items"].(map[string]any)["properties"].(map[string]any)
	}
	batch, renew := item("BatchManifest"), item("RenewRequest")
	for _, c := range []struct {
		where string
		got   any
		want  string
	}{
		{"path id", params["BlockID"].(map[string]any)["schema"], "BlockID"},
		{"Blind-Proof", params["BlindProof"].(map[string]any)["schema"], "Proof"},
		{"If-Match", params["IfMatch"].(map[string]any)["schema"], "EntityTags"},
		{"batch id", batch["id"], "BlockID"},
		{"batch proof", batch["proof"], "Proof"},
		{"batch if_match", batch["if_match"], "EntityTags"},
		{"renew id", renew["id"], "BlockID"},
		{"renew proof", renew["proof"], "Proof"},
		{"ETag header", comp["headers"].(map[string]any)["ETag"].(map[string]any)["schema"], "ETag"},
	} {
		if got := refOf(c.got); got != "#/components/schemas/"+c.want {
			t.Errorf("%s: schema %q, want the %s schema", c.where, got, c.want)
		}
	}
}

// TestServerPlainTextAnswers provokes the answers net/http gives before
// the API runs, and checks that openapi.json documents them as text/plain
// on every operation.
func TestServerPlainTextAnswers(t *testing.T) {
	e := newEnv(t)
	id := wire.NewID().String()
	e.secretID(id)
	for _, c := range []struct {
		head   string
		status int
	}{
		{"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n", http.StatusBadRequest},
		{"GET /healthz HTTP/1.1\r\n\r\n", http.StatusBadRequest}, // no Host
		{"NOT A REQUEST LINE\r\n\r\n", http.StatusBadRequest},
		{"PUT /v1/blocks/" + id + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", http.StatusNotImplemented},
	} {
		conn, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(conn, c.head); err != nil {
			t.Fatal(err)
		}
		res, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		conn.Close()
		if mt, _, _ := mime.ParseMediaType(res.Header.Get("Content-Type")); res.StatusCode != c.status || mt != "text/plain" {
			t.Errorf("%q: %d %q, want %d in text/plain", c.head, res.StatusCode, res.Header.Get("Content-Type"), c.status)
		}
	}
	_, doc := openapiOps(t)
	for p, item := range doc["paths"].(map[string]any) {
		for m, op := range item.(map[string]any) {
			if m == "parameters" {
				continue
			}
			rs := op.(map[string]any)["responses"].(map[string]any)
			for _, code := range []string{"400", "431", "501"} {
				content, _ := resolve(doc, rs[code])["content"].(map[string]any)
				if content["text/plain"] == nil {
					t.Errorf("%s %s: response %s does not offer text/plain", m, p, code)
				}
			}
		}
	}
}
