package postgres

import (
	"bytes"
	"context"
	"testing"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/wire"
	"github.com/jackc/pgx/v5/pgxpool"
)

// TestReadResolvesLayers puts blocks into every combination of layers a
// read has to resolve (the active hot side, the frozen side a seal left
// behind, the sealed part), each layer holding a lease, a tombstone, data
// or nothing, and checks that Read and Stat answer from the newest layer
// holding a lease for liveness and the newest holding a block row for the
// data. The read asks the older layers only when the newer ones are
// silent, so each case is one where a wrong order or a missing fallback
// shows. It checks again after a seal has merged everything.
func TestReadResolvesLayers(t *testing.T) {
	url := pgtest.URL(t)
	ctx := context.Background()
	s := openTest(t, url, testParams())
	conn := connect(t, url)
	live, gone := randBucket(t), randBucket(t)

	type want struct {
		name string
		o    *owned
		data []byte // nil: not found
	}
	var cases []*want
	add := func(name string) *want {
		o := newOwned(t, testBlockSize)
		w := &want{name: name, o: &o}
		cases = append(cases, w)
		return w
	}
	put := func(w *want, bucket bucketer.Bucket) {
		t.Helper()
		w.o.data = randBlock(t, testBlockSize)
		if rs := mustApply(t, s, w.o.put(bucket)); rs[0].Status != blobstore.StatusCreated && rs[0].Status != blobstore.StatusReplaced {
			t.Fatalf("%s: put: %s", w.name, rs[0].Status)
		}
		w.data = w.o.data
	}
	del := func(w *want) {
		t.Helper()
		if rs := mustApply(t, s, w.o.del()); rs[0].Status != blobstore.StatusDeleted {
			t.Fatalf("%s: delete: %s", w.name, rs[0].Status)
		}
		w.data = nil
	}
	renew := func(w *want) {
		t.Helper()
		// A renewal into the block's own bucket changes nothing.
		if rs := mustApply(t, s, w.o.renew(randBucket(t))); rs[0].Status != blobstore.StatusRenewed {
			t.Fatalf("%s: renew: %s", w.name, rs[0].Status)
		}
	}
	// freeze switches writers to the other side and leaves the side they
	// wrote to full, as a seal interrupted before its merge does.
	freeze := func() {
		t.Helper()
		err := s.maintenance(ctx, func(c *pgxpool.Conn) error {
			sd, err := s.loadSide(ctx, c)
			if err != nil {
				return err
			}
			return s.switchFrom(ctx, c, sd)
		})
		if err != nil {
			t.Fatalf("switch sides: %v", err)
		}
	}

	purged := add("sealed, then purged")
	put(purged, gone)
	mustSeal(t, s)
	if _, err := s.Purge(ctx, bucketer.LiveSet{Buckets: []bucketer.Bucket{live}}, false); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	purged.data = nil

	// Sealed first, then changed on the side that will be frozen.
	sealedOnly := add("sealed")
	sealedDeleted := add("sealed, deleted on the frozen side")
	sealedRenewed := add("sealed, renewed on the frozen side")
	sealedRewritten := add("sealed, rewritten on the frozen side, renewed on the active side")
	threeLayers := add("sealed, rewritten on the frozen side and on the active side")
	sealedThenActive := add("sealed, deleted on the active side")
	sealedRenewedActive := add("sealed, renewed on the active side")
	for _, w := range []*want{sealedOnly, sealedDeleted, sealedRenewed, sealedRewritten, threeLayers, sealedThenActive, sealedRenewedActive} {
		put(w, live)
	}
	mustSeal(t, s)
	del(sealedDeleted)
	renew(sealedRenewed)
	put(sealedRewritten, live)
	put(threeLayers, live)

	frozen := add("on the frozen side")
	frozenDeleted := add("on the frozen side, deleted on the active side")
	frozenRewritten := add("on the frozen side, rewritten on the active side")
	frozenRenewed := add("on the frozen side, renewed on the active side")
	frozenTombstone := add("put and deleted on the frozen side")
	for _, w := range []*want{frozen, frozenDeleted, frozenRewritten, frozenRenewed, frozenTombstone} {
		put(w, live)
	}
	del(frozenTombstone)
	freeze()

	renew(sealedRewritten)
	put(threeLayers, live)
	del(sealedThenActive)
	renew(sealedRenewedActive)
	del(frozenDeleted)
	put(frozenRewritten, live)
	renew(frozenRenewed)
	active := add("on the active side")
	put(active, live)
	activeDeleted := add("put and deleted on the active side")
	put(activeDeleted, live)
	del(activeDeleted)
	add("never written")

	check := func(when string) {
		t.Helper()
		for _, w := range cases {
			got, e, err := s.Read(ctx, w.o.id, nil)
			se, serr := s.Stat(ctx, w.o.id)
			if w.data == nil {
				if !blobstore.IsNotFound(err) || !blobstore.IsNotFound(serr) {
					t.Errorf("%s, %s: Read %v, Stat %v; want not found from both", when, w.name, err, serr)
				}
				continue
			}
			if err != nil || serr != nil {
				t.Errorf("%s, %s: Read %v, Stat %v", when, w.name, err, serr)
				continue
			}
			if !bytes.Equal(got, w.data) || e != wire.ETagOf(w.data) || se != e {
				t.Errorf("%s, %s: read another version of the block than the newest", when, w.name)
			}
		}
		// The same, every block in one grouped statement.
		ids := make([]wire.ID, len(cases))
		for i, w := range cases {
			ids[i] = w.o.id
		}
		for i, c := range readTogether(s, ids...) {
			w := cases[i]
			switch {
			case w.data == nil && !blobstore.IsNotFound(c.err):
				t.Errorf("%s, %s, read with the others: %v; want not found", when, w.name, c.err)
			case w.data != nil && (c.err != nil || !bytes.Equal(c.out, w.data) || c.etag != wire.ETagOf(w.data)):
				t.Errorf("%s, %s, read with the others: %v, or another version than the newest", when, w.name, c.err)
			}
		}
	}
	check("with both sides full")
	checkInvariants(t, conn)
	mustSeal(t, s) // merges the frozen side, then the active one
	check("after the seal")
	checkInvariants(t, conn)
	checkSealed(t, conn)
}
