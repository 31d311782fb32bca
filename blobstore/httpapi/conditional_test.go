package httpapi

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/wire"
)

func TestParseEntityTags(t *testing.T) {
	cases := []struct {
		in   []string
		star bool
		tags []string // opaque, "W/" marks weak
		bad  bool
	}{
		{in: []string{"*"}, star: true},
		{in: []string{` "a" `}, tags: []string{`"a"`}},
		{in: []string{`"a", W/"b"`, `"c"`}, tags: []string{`"a"`, `W/"b"`, `"c"`}},
		{in: []string{`"a,b"`}, tags: []string{`"a,b"`}}, // etagc includes the comma
		{in: []string{`""`}, tags: []string{`""`}},
		{in: []string{`,"a",,`}, tags: []string{`"a"`}},                // empty list elements are allowed
		{in: []string{"\"\x80\xff\""}, tags: []string{"\"\x80\xff\""}}, // obs-text
		{in: []string{""}, bad: true},
		{in: []string{" , "}, bad: true},
		{in: []string{"a"}, bad: true},
		{in: []string{`"a`}, bad: true},
		{in: []string{`"a" "b"`}, bad: true},
		{in: []string{`"a"b`}, bad: true},
		{in: []string{`w/"a"`}, bad: true},
		{in: []string{`W/ "a"`}, bad: true},
		{in: []string{`"a b"`}, bad: true},
		{in: []string{"\"a\x7f\""}, bad: true},
		{in: []string{`*, "a"`}, bad: true},
		{in: []string{"*", "*"}, bad: true},
		{in: []string{"**"}, bad: true},
	}
	for _, c := range cases {
		tags, star, err := parseEntityTags(c.in)
		if c.bad {
			if err == nil {
				t.Errorf("%q: accepted, want a syntax error", c.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		var got []string
		for _, tg := range tags {
			s := tg.opaque
			if tg.weak {
				s = "W/" + s
			}
			got = append(got, s)
		}
		if star != c.star || !slices.Equal(got, c.tags) {
			t.Errorf("%q: star %v tags %q, want %v %q", c.in, star, got, c.star, c.tags)
		}
	}
}

// TestForeignEntityTagsDoNotMatch checks RFC 9110 §13.1.1 on writes: an
// If-Match naming only tags this server never issued answers exactly as
// a stale tag of its own does (412, or the 403 or 404 that comes before
// a precondition), and an If-None-Match naming only such tags holds.
func TestForeignEntityTagsDoNotMatch(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	etag := e.mustPut(b)
	fresh := e.newBlock() // never written
	stranger := e.newBlock()
	stale := wire.ETagOf([]byte("stale")).String() // our format, not this block's
	e.secretETag(stale)
	path := func(x *block) string { return "/v1/blocks/" + x.id }
	foreign := []string{`"stale"`, `W/` + etag, `"stale", W/"x"`, `"a,b"`, etag[:len(etag)-1] + `A"`}

	type outcome struct {
		status int
		code   string
		etag   string
	}
	answer := func(r *resp) outcome {
		var p problem
		_ = json.Unmarshal(r.body, &p)
		return outcome{r.status, p.Code, r.header.Get("ETag")}
	}
	scenarios := []struct {
		name   string
		method string
		x      *block
		proof  string
	}{
		{"put, owner", "PUT", b, b.proof},
		{"put, stranger", "PUT", b, stranger.proof},
		{"put, missing block", "PUT", fresh, fresh.proof},
		{"delete, owner", "DELETE", b, b.proof},
		{"delete, stranger", "DELETE", b, stranger.proof},
		{"delete, missing block", "DELETE", fresh, fresh.proof},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			send := func(ifMatch string) *resp {
				var body []byte
				if sc.method == "PUT" {
					body = e.randomData()
				}
				return e.do(sc.method, path(sc.x), body, hdr{"Blind-Proof", sc.proof, "If-Match", ifMatch})
			}
			before := e.snapshot(b.id, fresh.id)
			want := answer(send(stale))
			if want.status/100 == 2 || want.status == http.StatusBadRequest {
				t.Fatalf("a stale tag of this server's answered %d", want.status)
			}
			for _, tag := range foreign {
				if got := answer(send(tag)); got != want {
					t.Errorf("If-Match %q: %+v, a stale tag answers %+v", tag, got, want)
				}
			}
			e.unchanged(before, b.id, fresh.id)
		})
	}

	// A list holds when any of its tags is the block's.
	b.data = e.randomData()
	r := e.put(b, "If-Match", `"stale", `+etag)
	r.wantStatus(t, http.StatusNoContent)
	etag = r.header.Get("ETag")

	// If-None-Match with only tags this server never issued holds: the
	// write goes ahead as without it.
	b.data = e.randomData()
	r = e.put(b, "If-None-Match", `"stale", W/"x"`)
	r.wantStatus(t, http.StatusNoContent)
	if r.header.Get("ETag") != wire.ETagOf(b.data).String() {
		t.Fatal("the write under a holding If-None-Match did not replace the block")
	}
	e.do("DELETE", path(b), nil, hdr{"Blind-Proof", b.proof, "If-None-Match", `"stale"`}).wantStatus(t, http.StatusNoContent)

	// Malformed headers stay 400 bad_etag.
	for _, h := range []string{"stale", `"unterminated`, `*, "x"`, `W/ "x"`, `"a" "b"`} {
		e.do("PUT", path(fresh), fresh.data, hdr{"Blind-Proof", fresh.proof, "If-Match", h}).wantProblem(t, http.StatusBadRequest, wire.CodeBadETag)
		e.do("PUT", path(fresh), fresh.data, hdr{"Blind-Proof", fresh.proof, "If-None-Match", h}).wantProblem(t, http.StatusBadRequest, wire.CodeBadETag)
	}
}

// TestBatchForeignIfMatch: a batch entry's if_match follows If-Match.
func TestBatchForeignIfMatch(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	etag := e.mustPut(b)
	other := e.newBlock()
	otherTag := e.mustPut(other)
	const ct = "application/vnd.blindstore.batch"
	newData := e.randomData()
	body := batchBody(t, entry{"blocks": []entry{
		{"id": b.id, "proof": b.proof, "if_match": `"stale"`},
		{"id": b.id, "proof": b.proof, "if_match": "W/" + etag, "check": true},
		{"id": other.id, "proof": other.proof, "if_match": `"stale", ` + otherTag},
	}}, newData, newData)
	r := e.do("POST", "/v1/blocks", body, hdr{"Content-Type", ct})
	r.wantStatus(t, http.StatusOK)
	var out BatchResponse
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	want := []BatchResult{
		{ID: b.id, Status: 412, Code: wire.CodePreconditionFailed, ETag: etag},
		{ID: b.id, Status: 412, Code: wire.CodePreconditionFailed, ETag: etag},
		{ID: other.id, Status: 204, ETag: wire.ETagOf(newData).String()},
	}
	if !slices.Equal(out.Results, want) {
		t.Fatalf("results %+v, want %+v", out.Results, want)
	}
	before := e.snapshot(b.id)
	bad := batchBody(t, entry{"blocks": []entry{{"id": b.id, "proof": b.proof, "if_match": "unquoted"}}}, newData)
	e.do("POST", "/v1/blocks", bad, hdr{"Content-Type", ct}).wantProblem(t, http.StatusBadRequest, wire.CodeBadETag)
	e.unchanged(before, b.id)
}

// FuzzParseEntityTags: the scanner never panics, what it accepts is
// entity-tag syntax, and every value openapi.json's EntityTags pattern
// admits is accepted as a list of tags.
func FuzzParseEntityTags(f *testing.F) {
	var doc struct {
		Components struct {
			Schemas map[string]struct {
				Pattern string `json:"pattern"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		f.Fatal(err)
	}
	pattern := regexp.MustCompile(doc.Components.Schemas["EntityTags"].Pattern)
	for _, s := range []string{`"a"`, `W/"a", "b"`, `"a,b"`, "*", `*, "a"`, `"a`, `,,`, "\"\x80\"", `W/""`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags, star, err := parseEntityTags([]string{s})
		if pattern.MatchString(s) && (err != nil || star) {
			t.Fatalf("%q matches the documented pattern, the parser answers star %v, %v", s, star, err)
		}
		if err != nil {
			return
		}
		if star == (len(tags) > 0) {
			t.Fatalf("%q: star %v with %d tags", s, star, len(tags))
		}
		for _, tg := range tags {
			if _, _, ok := scanEntityTag(tg.opaque); !ok || !strings.HasPrefix(tg.opaque, `"`) || !strings.Contains(s, tg.opaque) {
				t.Fatalf("%q: tag %q is not an opaque-tag of the input", s, tg.opaque)
			}
		}
	})
}
