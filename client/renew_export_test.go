package client

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
)

// A renewal export renews every block of the account, and nothing in it
// can overwrite or delete a block: its proofs, used as write proofs for
// a put (plain, create-only or compare-and-swap) or a delete, are all
// refused, and every block reads back unchanged. The export holds ids
// and renew proofs only: no key, no file name, no write proof.
func TestRenewExportCannotWriteOrDelete(t *testing.T) {
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	putBytes(t, a, "big", randomBytes(3*c))
	putBytes(t, a, "note", []byte("small"))
	l := a.ExportRenewals()
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	leaks := []string{"big", "note",
		wire.EncodeProof(a.root.AccountKey), wire.EncodeProof(a.root.OwnerSecret)}
	leaks = append(leaks, wire.EncodeProof(a.headLoc.Proof))
	for _, root := range a.head.Roots {
		leaks = append(leaks, wire.EncodeProof(root.Proof))
	}
	for _, e := range l.Blocks {
		id, _ := wire.ParseID(e.ID)
		leaks = append(leaks, wire.EncodeProof(a.root.OwnerSecret.WriteProof(id)))
	}
	for _, leak := range leaks {
		if bytes.Contains(b, []byte(leak)) || bytes.Contains(b, a.root.AccountKey[:]) || bytes.Contains(b, a.root.OwnerSecret[:]) {
			t.Fatal("the export holds a key, a write proof or a file name")
		}
	}
	_, items, err := ReadRenewList(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := s.remote(t)
	before := map[wire.ID][]byte{}
	for _, it := range items {
		data, _, err := r.Get(ctx, it.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		before[it.ID] = data
	}
	junk := randomBytes(testBlockSize)
	for _, it := range items {
		// The renew proof as a write proof, and the one derived from it:
		// whatever the holder computes from the export.
		for _, w := range []wire.WriteProof{wire.WriteProof(it.Proof), wire.WriteProof(wire.WriteProof(it.Proof).Renew())} {
			etag := wire.ETagOf(before[it.ID])
			for _, cond := range []Cond{{}, {CreateOnly: true}, {IfMatch: &etag}} {
				if _, err := r.Put(ctx, it.ID, w, junk, cond); err == nil {
					t.Fatalf("a put with an export's proof was accepted (%+v)", cond)
				}
			}
			if err := r.Delete(ctx, it.ID, w, &etag); err == nil {
				t.Fatal("a delete with an export's proof was accepted")
			}
			if err := r.Delete(ctx, it.ID, w, nil); err == nil {
				t.Fatal("a delete with an export's proof was accepted")
			}
		}
	}
	// Renewal works from the export alone, in the next period.
	s.advance()
	res, err := RenewFrom(ctx, r, items)
	if err != nil {
		t.Fatal(err)
	}
	if res.Renewed != len(items) || len(res.Missing)+len(res.Refused) != 0 {
		t.Fatalf("renew from the export: %+v of %d", res, len(items))
	}
	for id, want := range before {
		got, _, err := r.Get(ctx, id, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("a block changed or went: %v", err)
		}
	}
	if _, err := login(ctx, s.remote(t), "", loc); err != nil {
		t.Fatalf("the account after the attempts: %v", err)
	}
}

// An edit in a later period that keeps some of the old version's blocks
// does not claim them renewed: the file stays stale until a renewal
// sends them, so they cannot expire while the index says they are fresh.
func TestDeltaPutKeepsOldBlocksStale(t *testing.T) {
	s := newTestServer(t)
	a, _ := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	ctx := context.Background()
	data := randomBytes(20 * c)
	putBytes(t, a, "f", data)
	s.advance()
	edited := append(append([]byte{}, data[:10*c]...), append([]byte("x"), data[10*c:]...)...)
	putBytes(t, a, "f", edited) // most chunks are reused, never renewed since
	cur, err := a.Remote().CurrentPeriod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !a.Stale(cur) {
		t.Fatal("a file that kept old blocks is recorded as renewed this period")
	}
	rep, err := a.Renew(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Renewed < 10 {
		t.Fatalf("the renewal renewed %d blocks; the reused ones are stale", rep.Renewed)
	}
	// A put that rewrites every block is current.
	putBytes(t, a, "g", randomBytes(3*c))
	if g, _ := a.Lookup("g"); g.Renewed != cur {
		t.Fatalf("a fresh file is recorded as renewed in %d, want %d", g.Renewed, cur)
	}
}
