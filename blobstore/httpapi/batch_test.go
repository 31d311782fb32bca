package httpapi

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// batchBody frames a batch write: length, manifest, data.
func batchBody(t *testing.T, manifest any, data ...[]byte) []byte {
	t.Helper()
	var m []byte
	switch v := manifest.(type) {
	case []byte:
		m = v
	default:
		var err error
		if m, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	_ = binary.Write(&buf, binary.BigEndian, uint32(len(m)))
	buf.Write(m)
	for _, d := range data {
		buf.Write(d)
	}
	return buf.Bytes()
}

type entry = map[string]any

func TestBatchWrite(t *testing.T) {
	e := newEnv(t)
	a, b, c, d := e.newBlock(), e.newBlock(), e.newBlock(), e.newBlock()
	etagB := e.mustPut(b)
	etagC := e.mustPut(c)
	etagD := e.mustPut(d)
	stranger := e.newBlock()
	b.data = e.randomData()
	newD := e.randomData()

	body := batchBody(t, entry{"blocks": []entry{
		{"id": a.id, "proof": a.proof, "create_only": true},
		{"id": b.id, "proof": b.proof, "if_match": etagB},
		{"id": c.id, "proof": stranger.proof},
		{"id": strings.ToUpper(d.id), "proof": d.proof, "if_match": etagC},
	}}, a.data, b.data, e.randomData(), newD)
	r := e.do("POST", "/v1/blocks", body, hdr{"Content-Type", "application/vnd.blindstore.batch"})
	r.wantStatus(t, http.StatusOK)
	var got BatchResponse
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	want := []BatchResult{
		{ID: a.id, Status: 201, ETag: wire.ETagOf(a.data).String()},
		{ID: b.id, Status: 204, ETag: wire.ETagOf(b.data).String()},
		{ID: c.id, Status: 403, Code: wire.CodeProofMismatch},
		{ID: d.id, Status: 412, Code: wire.CodePreconditionFailed, ETag: etagD},
	}
	if len(got.Results) != len(want) {
		t.Fatalf("results %+v", got.Results)
	}
	for i := range want {
		e.secretETag(got.Results[i].ETag)
		if got.Results[i] != want[i] {
			t.Errorf("result %d: %+v, want %+v", i, got.Results[i], want[i])
		}
	}
	for _, blk := range []*block{a, b} {
		if r := e.do("GET", "/v1/blocks/"+blk.id, nil, nil); !bytes.Equal(r.body, blk.data) {
			t.Errorf("block %d of the batch was not written", 0)
		}
	}
	if s := e.snapshot(c.id, d.id); s.of[c.id] == "" || !strings.HasPrefix(s.of[c.id], etagC) || !strings.HasPrefix(s.of[d.id], etagD) {
		t.Error("a refused block of the batch changed")
	}
}

// An atomic batch commits a change as a client does: new blocks, the
// compare-and-swap of the block that refers to them, and deletions of
// what it replaces. A lost swap leaves nothing; a won one applies whole,
// a deletion of a block already gone failing alone.
func TestBatchAtomicCommit(t *testing.T) {
	e := newEnv(t)
	head, stale, fresh, chunk := e.newBlock(), e.newBlock(), e.newBlock(), e.newBlock()
	etagHead := e.mustPut(head)
	e.mustPut(stale)
	etagChunk := wire.ETagOf(chunk.data)
	gone := e.newBlock()
	e.secretID(gone.id)
	next := e.randomData()
	const ct = "application/vnd.blindstore.batch"
	commit := func(ifMatch string) []BatchResult {
		t.Helper()
		body := batchBody(t, entry{"atomic": true, "blocks": []entry{
			{"id": fresh.id, "proof": fresh.proof, "create_only": true},
			{"id": stale.id, "proof": stale.proof, "delete": true},
			{"id": head.id, "proof": head.proof, "if_match": ifMatch},
			{"id": gone.id, "proof": gone.proof, "delete": true},
			{"id": chunk.id, "proof": chunk.proof, "check": true, "if_match": etagChunk.String()},
		}}, fresh.data, next)
		r := e.do("POST", "/v1/blocks", body, hdr{"Content-Type", ct})
		r.wantStatus(t, http.StatusOK)
		var got BatchResponse
		if err := json.Unmarshal(r.body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Results) != 5 {
			t.Fatalf("%d results for 5 entries", len(got.Results))
		}
		for _, res := range got.Results {
			e.secretETag(res.ETag)
		}
		return got.Results
	}
	statuses := func(rs []BatchResult) []int {
		var s []int
		for _, r := range rs {
			s = append(s, r.Status)
		}
		return s
	}

	before := e.snapshot(head.id, stale.id, fresh.id)
	// The block checked is not there yet (a client's data still on
	// its way): the check fails and the batch with it.
	e.secretID(chunk.id)
	checkFailed := commit(etagHead)
	if got, want := statuses(checkFailed), []int{424, 424, 424, 424, 404}; !slices.Equal(got, want) {
		t.Fatalf("failed check: statuses %v, want %v", got, want)
	}
	e.unchanged(before, head.id, stale.id, fresh.id)
	e.mustPut(chunk)

	before = e.snapshot(head.id, stale.id, fresh.id)
	lost := commit(wire.ETagOf(next).String())
	if got, want := statuses(lost), []int{424, 424, 412, 424, 424}; !slices.Equal(got, want) {
		t.Fatalf("lost swap: statuses %v, want %v", got, want)
	}
	if lost[0].Code != wire.CodeAborted || lost[2].ETag != etagHead {
		t.Errorf("lost swap: %+v", lost)
	}
	e.unchanged(before, head.id, stale.id, fresh.id)

	won := commit(etagHead)
	if got, want := statuses(won), []int{201, 204, 204, 404, 200}; !slices.Equal(got, want) {
		t.Fatalf("won swap: statuses %v, want %v", got, want)
	}
	if r := e.do("GET", "/v1/blocks/"+head.id, nil, nil); !bytes.Equal(r.body, next) {
		t.Error("the swapped block does not hold the new data")
	}
	if r := e.do("GET", "/v1/blocks/"+fresh.id, nil, nil); !bytes.Equal(r.body, fresh.data) {
		t.Error("the new block was not written")
	}
	if r := e.do("GET", "/v1/blocks/"+stale.id, nil, nil); r.status != http.StatusNotFound {
		t.Errorf("the replaced block answers %d, want 404", r.status)
	}
}

func TestBatchWriteBadRequests(t *testing.T) {
	e := newEnv(t)
	b := e.newBlock()
	e.mustPut(b)
	fresh := e.newBlock()
	const ct = "application/vnd.blindstore.batch"
	one := func(m entry) entry { return entry{"blocks": []entry{m}} }
	okEntry := entry{"id": fresh.id, "proof": fresh.proof}
	good := batchBody(t, one(okEntry), fresh.data)
	five := entry{"blocks": []entry{okEntry, okEntry, okEntry, okEntry, okEntry}}
	bigManifest := make([]byte, 4)
	binary.BigEndian.PutUint32(bigManifest, MaxManifestBytes+1)
	e.secretID("01890a5d-ac96-774b-bcce-b302099a8057")
	// The largest framing there is, plus one byte: only the cap on the
	// whole body can refuse it.
	four, _ := json.Marshal(entry{"blocks": []entry{okEntry, okEntry, okEntry, okEntry}})
	four = append(four, bytes.Repeat([]byte(" "), MaxManifestBytes-len(four))...)
	fullManifest := batchBody(t, four, fresh.data, fresh.data, fresh.data, fresh.data, []byte{0})

	cases := []struct {
		name    string
		body    []byte
		chunked bool
		h       hdr
		status  int
		code    string
	}{
		{"no content type", good, false, nil, 415, wire.CodeUnsupportedMedia},
		{"json content type", good, false, hdr{"Content-Type", "application/json"}, 415, wire.CodeUnsupportedMedia},
		{"declared length over the cap", make([]byte, 4+MaxManifestBytes+4*e.bs+1), false, hdr{"Content-Type", ct}, 413, wire.CodeBodyTooLarge},
		{"chunked body over the cap", fullManifest, true, hdr{"Content-Type", ct}, 413, wire.CodeBodyTooLarge},
		{"manifest over its cap", append(bigManifest, make([]byte, 64)...), false, hdr{"Content-Type", ct}, 413, wire.CodeBodyTooLarge},
		{"empty manifest", make([]byte, 4), false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		{"no length prefix", []byte{0, 0}, false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		{"manifest not json", batchBody(t, []byte("{nope"), fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		{"unknown manifest field", batchBody(t, entry{"blocks": []entry{okEntry}, "extra": 1}, fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		{"no blocks", batchBody(t, entry{"blocks": []entry{}}), false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		{"over the batch limit", batchBody(t, five, fresh.data, fresh.data, fresh.data, fresh.data, fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBatchTooLarge},
		{"length disagrees with manifest", batchBody(t, entry{"blocks": []entry{okEntry, {"id": b.id, "proof": b.proof}}}, fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadSize},
		{"chunked, too little data", batchBody(t, entry{"blocks": []entry{okEntry, {"id": b.id, "proof": b.proof}}}, fresh.data, b.data[:10]), true, hdr{"Content-Type", ct}, 400, wire.CodeBadSize},
		{"chunked, too much data", batchBody(t, one(okEntry), fresh.data, []byte{1}), true, hdr{"Content-Type", ct}, 400, wire.CodeBadSize},
		{"v7 id", batchBody(t, one(entry{"id": "01890a5d-ac96-774b-bcce-b302099a8057", "proof": fresh.proof}), fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadID},
		{"bad proof", batchBody(t, one(entry{"id": fresh.id, "proof": "short"}), fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadProof},
		{"bad if_match", batchBody(t, one(entry{"id": b.id, "proof": b.proof, "if_match": "unquoted"}), fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadETag},
		{"create-only deletion", batchBody(t, one(entry{"id": b.id, "proof": b.proof, "delete": true, "create_only": true})), false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		{"data for a deletion", batchBody(t, one(entry{"id": b.id, "proof": b.proof, "delete": true}), fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadSize},
		{"deletion and check", batchBody(t, one(entry{"id": b.id, "proof": b.proof, "delete": true, "check": true})), false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		{"create-only check", batchBody(t, one(entry{"id": b.id, "proof": b.proof, "check": true, "create_only": true})), false, hdr{"Content-Type", ct}, 400, wire.CodeBadRequest},
		// One bad block fails the whole batch: the good one is not written.
		{"second block bad", batchBody(t, entry{"blocks": []entry{okEntry, {"id": "nope", "proof": b.proof}}}, fresh.data, fresh.data), false, hdr{"Content-Type", ct}, 400, wire.CodeBadID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot(b.id, fresh.id)
			r := e.doReader("POST", "/v1/blocks", c.body, c.chunked, c.h)
			r.wantProblem(t, c.status, c.code)
			e.unchanged(before, b.id, fresh.id)
		})
	}
}

func TestRenew(t *testing.T) {
	e := newEnv(t)
	a, b := e.newBlock(), e.newBlock()
	e.mustPut(a)
	e.mustPut(b)
	missing := e.newBlock()
	renew := func(entries ...entry) RenewResponse {
		t.Helper()
		body, _ := json.Marshal(entry{"blocks": entries})
		r := e.do("POST", "/v1/renew", body, hdr{"Content-Type", "application/json"})
		r.wantStatus(t, http.StatusOK)
		var out RenewResponse
		if err := json.Unmarshal(r.body, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	inBucket := func() int64 {
		t.Helper()
		st, err := e.store.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return st.Buckets[e.svc.Bucketer().CurrentBucket()]
	}

	got := renew(entry{"id": a.id, "proof": a.renew})
	if got.Renewed != 0 || got.Current != 1 || len(got.Missing) != 0 || len(got.Refused) != 0 {
		t.Fatalf("renew of a fresh block: %+v", got)
	}

	e.clock.Advance(24 * time.Hour)
	got = renew(
		entry{"id": a.id, "proof": a.renew},
		entry{"id": b.id, "proof": b.proof}, // a write proof is not a renew proof
		entry{"id": strings.ToUpper(missing.id), "proof": missing.renew},
	)
	want := RenewResponse{Renewed: 1, Current: 0, Missing: []string{missing.id}, Refused: []string{b.id}}
	if got.Renewed != want.Renewed || got.Current != want.Current || strings.Join(got.Missing, ",") != missing.id || strings.Join(got.Refused, ",") != b.id {
		t.Fatalf("renew: %+v, want %+v", got, want)
	}
	if n := inBucket(); n != 1 {
		t.Fatalf("%d blocks in the current bucket, want only the renewed one", n)
	}
	got = renew(entry{"id": a.id, "proof": a.renew}, entry{"id": b.id, "proof": b.renew})
	if got.Renewed != 1 || got.Current != 1 || got.Missing == nil || got.Refused == nil {
		t.Fatalf("second renew: %+v", got)
	}
}

func TestRenewBadRequests(t *testing.T) {
	e := newEnv(t)
	a := e.newBlock()
	e.mustPut(a)
	e.clock.Advance(24 * time.Hour) // so that a successful renewal would change the store
	ok := entry{"id": a.id, "proof": a.renew}
	j := func(v any) []byte { b, _ := json.Marshal(v); return b }
	nine := make([]entry, 9)
	for i := range nine {
		nine[i] = ok
	}
	e.secretID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
	cases := []struct {
		name   string
		body   []byte
		h      hdr
		status int
		code   string
	}{
		{"wrong content type", j(entry{"blocks": []entry{ok}}), hdr{"Content-Type", "text/plain"}, 415, wire.CodeUnsupportedMedia},
		{"not json", []byte("{"), nil, 400, wire.CodeBadRequest},
		{"unknown field", j(entry{"blocks": []entry{ok}, "x": 1}), nil, 400, wire.CodeBadRequest},
		{"trailing data", append(j(entry{"blocks": []entry{ok}}), []byte(" {}")...), nil, 400, wire.CodeBadRequest},
		{"no blocks", j(entry{"blocks": []entry{}}), nil, 400, wire.CodeBadRequest},
		{"over the batch limit", j(entry{"blocks": nine}), nil, 400, wire.CodeBatchTooLarge},
		{"body over its cap", append(j(entry{"blocks": []entry{ok}}), bytes.Repeat([]byte(" "), 1<<12)...), nil, 413, wire.CodeBodyTooLarge},
		{"v1 id", j(entry{"blocks": []entry{{"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8", "proof": a.renew}}}), nil, 400, wire.CodeBadID},
		{"bad proof", j(entry{"blocks": []entry{ok, {"id": a.id, "proof": "$$$"}}}), nil, 400, wire.CodeBadProof},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, _ := e.store.Stats(context.Background())
			before := st.Buckets[e.svc.Bucketer().CurrentBucket()]
			e.do("POST", "/v1/renew", c.body, c.h).wantProblem(t, c.status, c.code)
			st, _ = e.store.Stats(context.Background())
			if st.Buckets[e.svc.Bucketer().CurrentBucket()] != before {
				t.Fatal("a refused renew request renewed a block")
			}
		})
	}
}
