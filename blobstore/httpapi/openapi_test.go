package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
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
		concrete := strings.ReplaceAll(p, "{id}", blobstore.NewID().String())
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
	for _, c := range []string{blobstore.CodeBadID, blobstore.CodeBadSize, blobstore.CodeBadProof, blobstore.CodeBadETag, blobstore.CodeBadRequest,
		blobstore.CodeProofMismatch, blobstore.CodeNotFound, blobstore.CodePreconditionFailed, blobstore.CodeBodyTooLarge,
		blobstore.CodeHeaderTooLarge, blobstore.CodeUnsupportedMedia, blobstore.CodeRateLimited, blobstore.CodeUnavailable,
		blobstore.CodeTimeout, blobstore.CodeInternal, blobstore.CodeBatchTooLarge,
		blobstore.CodeTokenRequired, blobstore.CodeTokenInvalid, blobstore.CodeTokenSpent, blobstore.CodeFull} {
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
