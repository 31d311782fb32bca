package blobstore

import (
	"bytes"
	"strings"
	"testing"

	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

func TestParseIDAcceptsOnlyV4(t *testing.T) {
	cases := []struct {
		in   string
		ok   bool
		code string
	}{
		{"0b5e3a6e-8c1f-4d5a-9b7e-2f1a3c4d5e6f", true, ""},
		{"0B5E3A6E-8C1F-4D5A-9B7E-2F1A3C4D5E6F", true, ""},
		{"6ba7b810-9dad-11d1-80b4-00c04fd430c8", false, wire.CodeBadID},   // v1: embeds time and MAC
		{"01890a5d-ac96-774b-bcce-b302099a8057", false, wire.CodeBadID},   // v7: embeds time
		{"0b5e3a6e-8c1f-4d5a-cb7e-2f1a3c4d5e6f", false, wire.CodeBadID},   // wrong variant
		{"0b5e3a6e8c1f4d5a9b7e2f1a3c4d5e6f", false, wire.CodeBadID},       // not canonical form
		{"{0b5e3a6e-8c1f-4d5a-9b7e-2f1a3c4d5e6f}", false, wire.CodeBadID}, // braces
		{"0b5e3a6e-8c1f-4d5a-9b7e-2f1a3c4d5e6g", false, wire.CodeBadID},   // not hex
		{"", false, wire.CodeBadID},
	}
	for _, c := range cases {
		id, err := wire.ParseID(c.in)
		if c.ok {
			if err != nil {
				t.Errorf("ParseID(%q): %v", c.in, err)
			} else if id.String() != strings.ToLower(c.in) {
				t.Errorf("ParseID(%q).String() = %q", c.in, id.String())
			}
			continue
		}
		var e *wire.Error
		if err == nil || !asError(err, &e) || e.Code != c.code || e.Kind != wire.KindInvalid {
			t.Errorf("ParseID(%q) = %v, want %s", c.in, err, c.code)
		}
	}
	for i := 0; i < 100; i++ {
		if err := wire.NewID().Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

func asError(err error, e **wire.Error) bool {
	x, ok := err.(*wire.Error)
	*e = x
	return ok
}

func TestProofChain(t *testing.T) {
	var w wire.WriteProof
	copy(w[:], bytes.Repeat([]byte{3}, 32))
	r := w.Renew()
	if w.Hash() != r.Hash() {
		t.Fatal("write proof and its renew proof must hash to the same stored hash")
	}
	// A renew proof used as a write proof hashes once more, so it fails.
	if wire.WriteProof(r).Hash() == w.Hash() {
		t.Fatal("a renew proof must not work as a write proof")
	}
	if wire.RenewProof(w).Hash() == w.Hash() {
		t.Fatal("a write proof must not work as a renew proof")
	}
	s := wire.EncodeProof(w)
	if strings.ContainsAny(s, "=+/") || len(s) != 43 {
		t.Fatalf("proof encoding %q is not unpadded base64url", s)
	}
	back, err := wire.ParseProof(s)
	if err != nil || back != w {
		t.Fatalf("ParseProof round trip: %v", err)
	}
	for _, bad := range []string{"", "abc", s + "AA", strings.Repeat("*", 43)} {
		if _, err := wire.ParseProof(bad); wire.KindOf(err) != wire.KindInvalid {
			t.Errorf("ParseProof(%q) = %v, want invalid", bad, err)
		}
	}
}

func TestETagRoundTrip(t *testing.T) {
	e := wire.ETagOf([]byte("hello"))
	back, err := wire.ParseETag(e.String())
	if err != nil || back != e {
		t.Fatalf("ParseETag(%s): %v", e, err)
	}
	for _, bad := range []string{"", `W/` + e.String(), strings.Trim(e.String(), `"`), `"abc"`} {
		if _, err := wire.ParseETag(bad); err == nil {
			t.Errorf("ParseETag(%q) accepted", bad)
		}
	}
}

// Plan must give, for a batch, exactly what committing its ops one by one
// would give.
func TestPlanSequentialSemantics(t *testing.T) {
	var w1, w2 wire.WriteProof
	w1[0], w2[0] = 1, 2
	id := wire.NewID()
	b1, b2 := bucketer.Bucket{1}, bucketer.Bucket{2}
	d1, d2 := []byte("one"), []byte("two")
	e1, e2 := wire.ETagOf(d1), wire.ETagOf(d2)
	put := func(w wire.WriteProof, d []byte, c Cond) Op {
		return Op{Kind: OpPut, ID: id, ProofHash: w.Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: b1, Cond: c}
	}
	ops := []Op{
		{Kind: OpRenew, ID: id, ProofHash: w1.Renew().Hash(), Bucket: b2}, // missing
		put(w1, d1, Cond{IfMatch: &e1}),                                   // If-Match on missing
		put(w1, d1, Cond{IfNoneMatchAny: true}),                           // created
		put(w2, d2, Cond{}),                                               // wrong proof
		put(w1, d1, Cond{IfNoneMatchAny: true}),                           // exists
		put(w1, d2, Cond{IfMatch: &e2}),                                   // stale etag
		put(w1, d2, Cond{IfMatch: &e1}),                                   // replaced
		{Kind: OpRenew, ID: id, ProofHash: w1.Renew().Hash(), Bucket: b1}, // current
		{Kind: OpRenew, ID: id, ProofHash: w1.Hash(), Bucket: b2},         // write-proof hash is the stored hash: renewed
		{Kind: OpDelete, ID: id, ProofHash: w2.Hash()},                    // wrong proof
		{Kind: OpDelete, ID: id, ProofHash: w1.Hash()},                    // deleted
		{Kind: OpDelete, ID: id, ProofHash: w1.Hash()},                    // missing
	}
	want := []Status{StatusNotFound, StatusPrecondition, StatusCreated, StatusForbidden, StatusPrecondition,
		StatusPrecondition, StatusReplaced, StatusCurrent, StatusRenewed, StatusForbidden, StatusDeleted, StatusNotFound}
	rs, changes := Plan(ops, nil)
	for i := range want {
		if rs[i].Status != want[i] {
			t.Errorf("op %d: %v, want %v", i, rs[i].Status, want[i])
		}
	}
	if len(changes) != 0 {
		t.Fatalf("a block created and deleted in one batch leaves %d changes, want 0", len(changes))
	}

	// The same ops one at a time against a map give the same results.
	state := map[wire.ID]Meta{}
	for i, op := range ops {
		r, ch := Plan([]Op{op}, state)
		if r[0].Status != want[i] {
			t.Errorf("one at a time, op %d: %v, want %v", i, r[0].Status, want[i])
		}
		for _, c := range ch {
			if c.New == nil {
				delete(state, c.ID)
			} else {
				state[c.ID] = *c.New
			}
		}
	}
}

func TestPlanChanges(t *testing.T) {
	var w wire.WriteProof
	w[0] = 9
	a, b := wire.NewID(), wire.NewID()
	old := Meta{ProofHash: w.Hash(), ETag: wire.ETagOf([]byte("x")), Bucket: bucketer.Bucket{1}}
	cur := map[wire.ID]Meta{a: old, b: old}
	ops := []Op{
		{Kind: OpRenew, ID: a, ProofHash: w.Renew().Hash(), Bucket: bucketer.Bucket{2}},
		{Kind: OpRenew, ID: b, ProofHash: w.Renew().Hash(), Bucket: bucketer.Bucket{1}},
	}
	_, changes := Plan(ops, cur)
	if len(changes) != 1 || changes[0].ID != a || changes[0].Data != nil ||
		changes[0].Old.Bucket != (bucketer.Bucket{1}) || changes[0].New.Bucket != (bucketer.Bucket{2}) {
		t.Fatalf("renewal changes = %+v; want one bucket move of a with no data", changes)
	}
}

// wantStatuses checks each result's status against want, in order.
func wantStatuses(t *testing.T, what string, rs []Result, want ...Status) {
	t.Helper()
	for i := range want {
		if rs[i].Status != want[i] {
			t.Errorf("%s, op %d: %v, want %v", what, i, rs[i].Status, want[i])
		}
	}
}

// An atomic group applies all its puts or none, its deletes only with
// them, and an aborted group is as if it had never been in the batch:
// what later ops of other groups saw of it is planned again.
func TestPlanAtomicGroups(t *testing.T) {
	var w wire.WriteProof
	w[0] = 7
	b := bucketer.Bucket{1}
	head, idx, stale, other := wire.NewID(), wire.NewID(), wire.NewID(), wire.NewID()
	oldData, newData := []byte("head v1"), []byte("head v2")
	oldETag := wire.ETagOf(oldData)
	cur := map[wire.ID]Meta{
		head:  {ProofHash: w.Hash(), ETag: oldETag, Bucket: b},
		stale: {ProofHash: w.Hash(), ETag: wire.ETagOf([]byte("old index")), Bucket: b},
	}
	put := func(id wire.ID, d []byte, c Cond, g uint64) Op {
		return Op{Kind: OpPut, ID: id, ProofHash: w.Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: b, Cond: c, Group: g}
	}
	del := func(id wire.ID, g uint64) Op { return Op{Kind: OpDelete, ID: id, ProofHash: w.Hash(), Group: g} }
	wrong := wire.ETagOf([]byte("someone else's head"))

	// A commit that lost its compare-and-swap: nothing of it applies,
	// including a delete that would have succeeded, and a later op of
	// another group on the block it would have created sees no block.
	ops := []Op{
		put(idx, []byte("index"), Cond{IfNoneMatchAny: true}, 1),
		put(head, newData, Cond{IfMatch: &wrong}, 1),
		del(stale, 1),
		{Kind: OpRenew, ID: idx, ProofHash: w.Renew().Hash(), Bucket: bucketer.Bucket{2}, Group: 2},
		put(other, []byte("unrelated"), Cond{}, 0),
	}
	rs, changes := Plan(ops, cur)
	wantStatuses(t, "lost swap", rs, StatusAborted, StatusPrecondition, StatusAborted, StatusNotFound, StatusCreated)
	if len(changes) != 1 || changes[0].ID != other {
		t.Errorf("lost swap leaves %d changes, want only the unrelated put", len(changes))
	}

	// The same commit with the right ETag applies whole; a delete of a
	// missing block fails alone and aborts nothing.
	ops = []Op{
		put(idx, []byte("index"), Cond{IfNoneMatchAny: true}, 3),
		put(head, newData, Cond{IfMatch: &oldETag}, 3),
		del(stale, 3),
		del(wire.NewID(), 3),
	}
	rs, changes = Plan(ops, cur)
	wantStatuses(t, "won swap", rs, StatusCreated, StatusReplaced, StatusDeleted, StatusNotFound)
	if len(changes) != 3 {
		t.Errorf("won swap: %d changes, want 3 (index, head, stale)", len(changes))
	}

	// Two groups racing for one head in one batch: whichever comes
	// first wins, the other aborts whole, in either order.
	for _, first := range []uint64{4, 5} {
		second := uint64(9) - first
		ops = []Op{
			put(wire.NewID(), []byte("index a"), Cond{IfNoneMatchAny: true}, first),
			put(head, []byte("head a"), Cond{IfMatch: &oldETag}, first),
			put(wire.NewID(), []byte("index b"), Cond{IfNoneMatchAny: true}, second),
			put(head, []byte("head b"), Cond{IfMatch: &oldETag}, second),
		}
		rs, changes = Plan(ops, cur)
		wantStatuses(t, "race", rs, StatusCreated, StatusReplaced, StatusAborted, StatusPrecondition)
		if len(changes) != 2 {
			t.Errorf("race: %d changes, want 2 (the winner's)", len(changes))
		}
	}

	// Aborting a group can make a later group's put succeed: group 6
	// deletes the head then fails; group 7's If-Match on the old head
	// must see the head still there, so it applies.
	ops = []Op{
		del(head, 6),
		put(wire.NewID(), []byte("x"), Cond{IfMatch: &wrong}, 6),
		put(head, newData, Cond{IfMatch: &oldETag}, 7),
	}
	rs, _ = Plan(ops, cur)
	wantStatuses(t, "replanned", rs, StatusAborted, StatusPrecondition, StatusReplaced)
}

// A check sees the batch as applied, whatever the order of its ops: a
// group that checks a block written by another request of the same
// batch holds, one that checks a block nobody wrote aborts whole.
func TestPlanChecks(t *testing.T) {
	var w, stranger wire.WriteProof
	w[0], stranger[0] = 5, 6
	b := bucketer.Bucket{1}
	data, head := wire.NewID(), wire.NewID()
	d := []byte("chunk")
	e := wire.ETagOf(d)
	cur := map[wire.ID]Meta{head: {ProofHash: w.Hash(), ETag: wire.ETagOf([]byte("h1")), Bucket: b}}
	h1 := wire.ETagOf([]byte("h1"))
	check := func(id wire.ID, p wire.WriteProof, etag wire.ETag, g uint64) Op {
		return Op{Kind: OpCheck, ID: id, ProofHash: p.Hash(), Cond: Cond{IfMatch: &etag}, Group: g}
	}
	swap := func(g uint64) Op {
		nd := []byte("h2")
		return Op{Kind: OpPut, ID: head, ProofHash: w.Hash(), Data: nd, ETag: wire.ETagOf(nd), Bucket: b, Cond: Cond{IfMatch: &h1}, Group: g}
	}
	put := Op{Kind: OpPut, ID: data, ProofHash: w.Hash(), Data: d, ETag: e, Bucket: b, Cond: Cond{IfNoneMatchAny: true}}

	// The check comes before the put it depends on: it holds.
	rs, changes := Plan([]Op{check(data, w, e, 1), swap(1), put}, cur)
	if rs[0].Status != StatusChecked || rs[1].Status != StatusReplaced || rs[2].Status != StatusCreated {
		t.Fatalf("check before its put: %v %v %v", rs[0].Status, rs[1].Status, rs[2].Status)
	}
	if len(changes) != 2 {
		t.Fatalf("%d changes, want 2 (the data and the head)", len(changes))
	}
	// Without the put, or with another's proof, or another ETag, the
	// group aborts and the head stays.
	for _, c := range []struct {
		name string
		op   Op
		want Status
	}{
		{"missing", check(data, w, e, 2), StatusNotFound},
		{"stranger", check(head, stranger, h1, 2), StatusForbidden},
		{"other etag", check(head, w, e, 2), StatusPrecondition},
	} {
		rs, changes = Plan([]Op{swap(2), c.op}, cur)
		if rs[0].Status != StatusAborted || rs[1].Status != c.want || len(changes) != 0 {
			t.Errorf("%s: %v %v, %d changes; want aborted, %v, none", c.name, rs[0].Status, rs[1].Status, len(changes), c.want)
		}
	}
}
