package client

import (
	"context"
	"slices"
	"testing"

	"github.com/blindstore/blindstore/client/format"
)

func names(a *Account) []string {
	var out []string
	for _, f := range a.Files() {
		out = append(out, f.Name)
	}
	return out
}

// A folder moved, a file removed, and the folders they emptied kept as
// markers, in one index update; the moved data is not sent again, and
// the removed file's blocks are deleted.
func TestReshape(t *testing.T) {
	ctx := context.Background()
	s := newTestServer(t)
	a, loc := newTestAccount(t, s)
	c := format.PayloadCapacity(testBlockSize)
	big := randomBytes(3 * c)
	putBytes(t, a, "src/deep/big", big)
	putBytes(t, a, "src/small", []byte("small"))
	putBytes(t, a, "old/gone", randomBytes(2*c))
	blocks, gen := s.blocks(t), a.Generation()
	err := a.Reshape(ctx, Reshape{
		Remove: []string{"old/gone"},
		Rename: [][2]string{{"src/deep/big", "dst/deep/big"}, {"src/small", "dst/small"}},
		Keep:   []string{"old", "src", "dst"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.Generation(); got != gen+1 {
		t.Errorf("generation %d after Reshape, want %d: one update", got, gen+1)
	}
	want := []string{"dst/deep/big", "dst/small", "old/" + DirMarker, "src/" + DirMarker}
	if got := names(a); !slices.Equal(got, want) {
		t.Fatalf("files %q, want %q", got, want)
	}
	// The two blocks of old/gone are deleted; the index may have grown
	// or shrunk by its own blocks only.
	if got := s.blocks(t); got > blocks-2+1 || got < blocks-2-1 {
		t.Errorf("%d blocks after Reshape, had %d: the removed file's 2 should go, nothing be sent", got, blocks)
	}
	b, err := login(ctx, s.remote(t), "", loc)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := getBytes(t, b, "dst/deep/big"); err != nil || string(got) != string(big) {
		t.Fatalf("moved file: %v", err)
	}

	wantKind(t, a.Reshape(ctx, Reshape{Remove: []string{"nope"}}), KindNotFound)
	wantKind(t, a.Reshape(ctx, Reshape{Rename: [][2]string{{"dst/small", "dst/deep/big"}}}), KindConflict)
	wantKind(t, a.Reshape(ctx, Reshape{Rename: [][2]string{{"dst/small", "../x"}}}), KindInvalid)
	// A refused update changes nothing.
	if got := names(a); !slices.Equal(got, want) {
		t.Fatalf("after refused updates: %q", got)
	}
}
