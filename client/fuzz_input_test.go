package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/blindstore/blindstore/internal/seeded"
	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
)

// Fuzz targets for what reaches the client from outside: a capability
// pasted by a user, a renewal export and a device key file from disk, a
// recovery code typed in, a head block's payload, and every answer of a
// server, which may be hostile.

// FuzzParseCapability: a capability parses only in its canonical form
// (white space around it aside), and what parses prints back the same.
func FuzzParseCapability(f *testing.F) {
	c := format.Capability{Manifest: seeded.BlockID("cap"), Key: testKey("cap key")}
	f.Add(c.String())
	f.Add(" " + c.String() + "\n")
	f.Add(strings.ToUpper(c.String()))
	f.Add(c.String() + "=")
	f.Add("blind1:" + c.Manifest.String() + ":")
	f.Add("blind1::")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseCapability(s)
		if err != nil {
			if !errors.Is(err, ErrBadCapability) || KindOf(err) != KindInvalid {
				t.Fatalf("ParseCapability error %v", err)
			}
			return
		}
		if got.String() != strings.TrimSpace(s) {
			t.Fatalf("ParseCapability(%q) accepted a form that prints as %q", s, got.String())
		}
	})
}

// FuzzReadRenewList: an export parses strictly, and each of its entries
// becomes exactly one valid item.
func FuzzReadRenewList(f *testing.F) {
	id := seeded.BlockID("renew")
	var p wire.RenewProof
	p[0] = 1
	good, _ := json.Marshal(RenewList{Format: renewListFormat, Server: "http://x", Generation: 3, Blocks: []RenewEntry{{ID: id.String(), Proof: wire.EncodeProof(p)}}})
	f.Add(good)
	f.Add([]byte(`{"format":"blindstore-renew-v1","blocks":[{"id":"x","proof":"y"}]}`))
	f.Add([]byte(`{"format":"blindstore-renew-v1","blocks":null}`))
	f.Add([]byte(`{"format":"blindstore-renew-v1","extra":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, in []byte) {
		l, items, err := ReadRenewList(bytes.NewReader(in))
		if err != nil {
			if KindOf(err) != KindInvalid {
				t.Fatalf("error of kind %v: %v", KindOf(err), err)
			}
			return
		}
		if l.Format != renewListFormat || len(items) != len(l.Blocks) {
			t.Fatalf("format %q, %d items of %d entries", l.Format, len(items), len(l.Blocks))
		}
		for _, it := range items {
			if it.ID.Validate() != nil {
				t.Fatal("an item with an invalid id")
			}
		}
	})
}

// FuzzKeyFiles: the device key file and the recovery code, as read from
// disk and from a person.
func FuzzKeyFiles(f *testing.F) {
	var d format.DeviceKey
	d[3] = 9
	text, _ := d.MarshalText()
	f.Add(string(text))
	f.Add(string(text) + "\n")
	f.Add("blindstore-device-key-v1:")
	var rc format.RecoveryCode
	rc[0] = 0xab
	f.Add(rc.String())
	f.Add(strings.ToLower(strings.ReplaceAll(rc.String(), "-", " ")))
	f.Add("OIL")
	f.Fuzz(func(t *testing.T, s string) {
		var dk format.DeviceKey
		if err := dk.UnmarshalText([]byte(s)); err == nil {
			again, _ := dk.MarshalText()
			var dk2 format.DeviceKey
			if dk2.UnmarshalText(again) != nil || dk2 != dk {
				t.Fatalf("device key %q does not round-trip", s)
			}
		}
		if c, err := format.ParseRecoveryCode(s); err == nil {
			c2, err := format.ParseRecoveryCode(c.String())
			if err != nil || c2 != c {
				t.Fatalf("recovery code %q does not round-trip", s)
			}
		} else if !errors.Is(err, format.ErrBadRecoveryCode) {
			t.Fatalf("ParseRecoveryCode error %v", err)
		}
	})
}

// answerTransport answers every request to path with one fuzzed answer,
// and /v1/config with a valid configuration (unless path is the config).
type answerTransport struct {
	path, ctype, retryAfter, etag string
	status                        int
	body                          []byte
}

const fuzzConfig = `{"version":"x","block_size":1024,"period_seconds":3600,"retention_periods":3,"current_period":5,"limits":{"renew_batch":2,"write_batch":2,"max_manifest_bytes":65536,"max_batch_body_bytes":200000}}`

func (a *answerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	h := http.Header{}
	if req.URL.Path == "/v1/config" && a.path != "/v1/config" {
		h.Set("Content-Type", "application/json")
		return &http.Response{StatusCode: 200, Header: h, Body: io.NopCloser(strings.NewReader(fuzzConfig)), ContentLength: -1, Request: req}, nil
	}
	if a.ctype != "" {
		h.Set("Content-Type", a.ctype)
	}
	if a.retryAfter != "" {
		h.Set("Retry-After", a.retryAfter)
	}
	if a.etag != "" {
		h.Set("ETag", a.etag)
	}
	return &http.Response{StatusCode: a.status, Header: h, Body: io.NopCloser(bytes.NewReader(a.body)), ContentLength: -1, Request: req}, nil
}

// printable reports whether s could be shown on a terminal as it is: no
// control characters (an escape sequence from a hostile server could
// rewrite what the user sees), no bidi overrides and no invalid UTF-8.
func printable(s string) bool {
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return false
		}
	}
	return true
}

// FuzzRemoteAnswers plays a hostile server: each operation of Remote gets
// an answer of the fuzzer's making. Nothing panics; what is accepted is
// what was asked for (a block of the right size whose ETag is its data's,
// renewal counts that add up); and no error message carries a control
// character or runs longer than a line, whatever the server wrote.
func FuzzRemoteAnswers(f *testing.F) {
	data := bytes.Repeat([]byte{7}, 1024)
	etag := wire.ETagOf(data).String()
	id := seeded.BlockID("remote")
	f.Add(uint8(1), 200, "application/octet-stream", "", etag, data)
	f.Add(uint8(0), 200, "application/json", "", "", []byte(fuzzConfig))
	f.Add(uint8(0), 200, "application/json", "", "", []byte(`{"block_size":1000}`))
	f.Add(uint8(2), 201, "", "", etag, []byte{})
	f.Add(uint8(2), 412, "application/problem+json", "", etag, []byte(`{"code":"precondition_failed"}`))
	f.Add(uint8(3), 404, "application/problem+json", "", "", []byte(`{"code":"not_found"}`))
	f.Add(uint8(3), 418, "application/problem+json", "", "", []byte(`{"code":"\u001b]0;pwned\u0007","detail":"\u001b[2J`+strings.Repeat("x", 5000)+`"}`))
	f.Add(uint8(4), 200, "application/json", "", "", []byte(`{"results":[{"id":"`+id.String()+`","status":201,"etag":`+string(mustJSON(etag))+`}]}`))
	f.Add(uint8(5), 200, "application/json", "", "", []byte(`{"renewed":1,"current":0,"missing":["`+id.String()+`"],"refused":[]}`))
	f.Add(uint8(5), 429, "application/problem+json", "99999999999999", "", []byte(`{"code":"rate_limited"}`))
	f.Add(uint8(1), 503, "text/plain", "-1", "", []byte("down"))
	f.Fuzz(func(t *testing.T, op uint8, status int, ctype, retryAfter, etagHdr string, body []byte) {
		if status < 100 || status > 999 {
			return
		}
		paths := []string{"/v1/config", "/v1/blocks/" + id.String(), "/v1/blocks/" + id.String(), "/v1/blocks/" + id.String(), "/v1/blocks", "/v1/renew"}
		op %= uint8(len(paths))
		tr := &answerTransport{path: paths[op], status: status, ctype: ctype, retryAfter: retryAfter, etag: etagHdr, body: body}
		r, err := NewRemote("http://blindstore.invalid", &http.Client{Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		r.Retries, r.Backoff, r.MaxWait = 0, 0, 0
		// Nothing here waits: no retries, no patience for Retry-After.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		defer func() {
			if ctx.Err() != nil {
				t.Fatalf("operation %d took more than 5 s against an answer %d", op, status)
			}
		}()
		var w wire.WriteProof
		switch op {
		case 0:
			var c *ServerConfig
			if c, err = r.Config(ctx); err == nil && c.validate() != nil {
				t.Fatalf("accepted an unusable configuration %+v", c)
			}
		case 1:
			var got []byte
			var e wire.ETag
			if got, e, err = r.Get(ctx, id, nil); err == nil && (len(got) != 1024 || e != wire.ETagOf(got)) {
				t.Fatalf("accepted a block of %d bytes with ETag %v", len(got), e)
			}
		case 2:
			var e wire.ETag
			if e, err = r.Put(ctx, id, w, data, Cond{CreateOnly: true}); err == nil && e.String() != etag {
				t.Fatal("a put returned another ETag than its data's")
			}
		case 3:
			err = r.Delete(ctx, id, w, nil)
		case 4:
			err = r.PutBatch(ctx, []BatchItem{{ID: id, Proof: w, Data: data}})
		case 5:
			var res RenewResult
			items := []RenewItem{{ID: id}, {ID: seeded.BlockID("other")}}
			if res, err = r.Renew(ctx, items); err == nil {
				if res.Renewed < 0 || res.Current < 0 || res.Renewed+res.Current+len(res.Missing)+len(res.Refused) != len(items) {
					t.Fatalf("renewal counts %+v for %d blocks", res, len(items))
				}
				// Each block has one outcome: the server may name only
				// blocks that were sent, each once.
				named := map[wire.ID]int{}
				for _, x := range append(append([]wire.ID(nil), res.Missing...), res.Refused...) {
					named[x]++
				}
				for x, n := range named {
					if n > 1 || (x != items[0].ID && x != items[1].ID) {
						t.Fatalf("the renewal's answer names a block %d times, sent: %v", n, x == items[0].ID || x == items[1].ID)
					}
				}
			}
		}
		if err != nil {
			msg := err.Error()
			if !printable(msg) || len(msg) > 600 {
				t.Fatalf("error message of %d bytes, printable %v: %q", len(msg), printable(msg), msg)
			}
		}
	})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
