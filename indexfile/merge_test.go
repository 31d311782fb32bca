package indexfile

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func named(f File, name string) File { f.Name = name; return f }

func renewed(f File, p uint64) File { f.Renewed = p; return f }

func idx(files ...File) *Index {
	return &Index{Files: sortedCopy(files)}
}

func TestMerge(t *testing.T) {
	a0 := file("a", t0, 1)                      // the common version
	a1 := file("a", t0.Add(1*time.Hour), 2)     // an edit
	a2 := file("a", t0.Add(2*time.Hour), 3)     // a later edit
	a1same := file("a", t0.Add(1*time.Hour), 4) // an edit with a1's time
	b0 := file("b", t0, 5)
	c0 := file("c", t0, 6)
	x := file("x", t0.Add(3*time.Hour), 7)
	xy := file("x/y", t0, 8)
	rep1 := file("dir/report.pdf", t0.Add(1*time.Hour), 9)
	rep2 := file("dir/report.pdf", t0.Add(2*time.Hour), 10)
	rc1 := file(".bashrc", t0.Add(1*time.Hour), 11)
	rc2 := file(".bashrc", t0.Add(2*time.Hour), 12)
	const a1conflict = "a.conflict-20250314-160926" // a1's time, UTC

	cases := []struct {
		name               string
		base, ours, theirs *Index
		want               *Index
	}{
		{"nothing", idx(), idx(), idx(), idx()},
		{"no base", nil, idx(a0), idx(b0), idx(a0, b0)},
		{"added on ours", idx(), idx(a0), idx(), idx(a0)},
		{"added on theirs", idx(), idx(), idx(a0), idx(a0)},
		{"added on both, same", idx(), idx(a0), idx(a0), idx(a0)},
		{"added on both, different", idx(), idx(a1), idx(a2), idx(a2, named(a1, a1conflict))},
		{"changed on ours", idx(a0), idx(a1), idx(a0), idx(a1)},
		{"changed on theirs", idx(a0), idx(a0), idx(a1), idx(a1)},
		{"same change on both", idx(a0), idx(a1), idx(a1), idx(a1)},
		{"deleted on ours", idx(a0), idx(), idx(a0), idx()},
		{"deleted on theirs", idx(a0), idx(a0), idx(), idx()},
		{"deleted on both", idx(a0), idx(), idx(), idx()},
		{"deleted on ours, changed on theirs", idx(a0), idx(), idx(a1), idx(a1)},
		{"changed on ours, deleted on theirs", idx(a0), idx(a1), idx(), idx(a1)},
		{"changed on both, theirs newer", idx(a0), idx(a1), idx(a2), idx(a2, named(a1, a1conflict))},
		{"changed on both, ours newer", idx(a0), idx(a2), idx(a1), idx(a2, named(a1, a1conflict))},
		{"changed on both at the same time", idx(a0), idx(a1same), idx(a1), idx(a1, named(a1same, a1conflict))},
		{"renewed on ours, changed on theirs", idx(a0), idx(renewed(a0, 700)), idx(a1), idx(a1)},
		{"renewed on ours only", idx(a0), idx(renewed(a0, 700)), idx(a0), idx(renewed(a0, 700))},
		{"renewed on both", idx(a0), idx(renewed(a0, 690)), idx(renewed(a0, 700)), idx(renewed(a0, 700))},
		{"unrelated changes on both", idx(a0, b0), idx(a1, b0), idx(a0, c0), idx(a1, c0)},
		{"file where theirs has a directory", idx(), idx(x), idx(xy), idx(xy, named(x, "x.conflict-20250314-180926"))},
		{"conflict name taken", idx(a0, named(b0, a1conflict)), idx(a1, named(b0, a1conflict)), idx(a2, named(b0, a1conflict)),
			idx(a2, named(b0, a1conflict), named(a1, a1conflict+"-2"))},
		{"extension kept", idx(), idx(rep1), idx(rep2), idx(rep2, named(rep1, "dir/report.conflict-20250314-160926.pdf"))},
		{"dotfile", idx(), idx(rc1), idx(rc2), idx(rc2, named(rc1, ".bashrc.conflict-20250314-160926"))},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Merge(c.base, c.ours, c.theirs)
			if err := got.Validate(); err != nil {
				t.Fatalf("merged index is invalid: %v", err)
			}
			if !reflect.DeepEqual(names(got), names(c.want)) {
				t.Fatalf("names = %q, want %q", names(got), names(c.want))
			}
			if len(got.Files) > 0 && !reflect.DeepEqual(got.Files, c.want.Files) {
				t.Fatalf("files = %+v\nwant %+v", got.Files, c.want.Files)
			}
		})
	}
}

func names(x *Index) []string {
	var s []string
	for _, f := range x.Files {
		s = append(s, f.Name)
	}
	return s
}

func TestMergeGenerationAndIsolation(t *testing.T) {
	base := idx(file("a", t0, 1))
	ours, theirs := base.Clone(), base.Clone()
	ours.Generation, theirs.Generation = 7, 9
	got := Merge(base, ours, theirs)
	if got.Generation != 10 {
		t.Fatalf("Generation = %d, want 10", got.Generation)
	}
	got.Files[0].Chunks[0].Size = 99
	if ours.Files[0].Chunks[0].Size == 99 || theirs.Files[0].Chunks[0].Size == 99 {
		t.Fatal("the merged index shares chunks with its inputs")
	}
}

func TestMergeLongNames(t *testing.T) {
	long := strings.Repeat("é", 127) + ".txt" // 258 bytes: over one element's usual limit
	short := strings.Repeat("x", 250) + ".txt"
	deep := strings.Repeat("d/", (MaxNameLen-20)/2) + "f.txt"
	for _, n := range []string{long, short, deep} {
		got := Merge(idx(), idx(file(n, t0, 1)), idx(file(n, t0.Add(time.Hour), 2)))
		if err := got.Validate(); err != nil {
			t.Fatalf("merging %d-byte names: %v", len(n), err)
		}
		if len(got.Files) != 2 {
			t.Fatalf("merge of a conflict on a %d-byte name kept %d files", len(n), len(got.Files))
		}
		c := got.Files[0].Name
		if c == n {
			c = got.Files[1].Name
		}
		if !strings.Contains(c, ".conflict-") || !strings.HasSuffix(c, ".txt") {
			t.Fatalf("conflict name %q", c)
		}
		if elem := c[strings.LastIndexByte(c, '/')+1:]; len(n) <= 255 && len(elem) > 255 {
			t.Fatalf("conflict name element of %d bytes from a %d-byte name", len(elem), len(n))
		}
	}
}

// TestMergeRandom merges random histories over a small set of names
// (some of them directories of others) and checks what must always hold:
// the result is a valid index, and no version either side wrote since
// base is lost.
func TestMergeRandom(t *testing.T) {
	pool := []string{"a", "a/b", "a/c", "b", "b.conflict-20250314-150926", "c/d", "c"}
	r := rand.New(rand.NewPCG(5, 6))
	version := 0
	randomIndex := func(from *Index) *Index {
		x := &Index{}
		if from != nil {
			x = from.Clone()
		}
		for range r.IntN(4) {
			n := pool[r.IntN(len(pool))]
			switch r.IntN(3) {
			case 0:
				x.Remove(n)
			default:
				version++
				f := file(n, t0.Add(time.Duration(r.IntN(3))*time.Minute), uint32(version))
				// Put refuses file/directory clashes within one index, as
				// a device would; the clash can only arise between two.
				_ = x.Put(f)
			}
		}
		return x
	}
	conflicts, dirClashes := 0, 0
	for i := range 3000 {
		base := randomIndex(nil)
		ours, theirs := randomIndex(base), randomIndex(base)
		got := Merge(base, ours, theirs)
		for _, f := range got.Files {
			if strings.Contains(f.Name, ".conflict-") && !slices.Contains(pool, f.Name) {
				conflicts++
				if n := f.Name[:strings.Index(f.Name, ".conflict-")]; got.Lookup(n) == nil {
					dirClashes++ // moved out of the way of a directory, not a version conflict
				}
			}
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("case %d: merged index invalid: %v", i, err)
		}
		for _, side := range []*Index{ours, theirs} {
			for _, f := range side.Files {
				if b := base.Lookup(f.Name); b != nil && sameVersion(b, &f) {
					continue
				}
				if !slices.ContainsFunc(got.Files, func(g File) bool { h := g; h.Name = f.Name; return sameVersion(&h, &f) }) {
					t.Fatalf("case %d: version of %q written since base is lost\nbase %v\nours %v\ntheirs %v\ngot %v",
						i, f.Name, names(base), names(ours), names(theirs), names(got))
				}
			}
		}
	}
	// The histories must reach the interesting cases, or this test
	// checks nothing.
	t.Logf("%d conflict copies, %d of them moved out of a directory's way", conflicts, dirClashes)
	if conflicts < 100 || dirClashes < 20 {
		t.Fatalf("only %d conflicts and %d directory clashes in 3000 merges", conflicts, dirClashes)
	}
}

func ExampleMerge() {
	mtime := time.Date(2025, 1, 2, 15, 4, 5, 0, time.UTC)
	base := idx(file("notes.txt", mtime, 10))
	laptop := idx(file("notes.txt", mtime.Add(time.Hour), 11))
	phone := idx(file("notes.txt", mtime.Add(2*time.Hour), 12))
	for _, f := range Merge(base, laptop, phone).Files {
		fmt.Println(f.Name, f.Size)
	}
	// Output:
	// notes.conflict-20250102-160405.txt 11
	// notes.txt 12
}

// The account blocks' renewal survives a merge only as far as both sides
// know it: the other side may have written index blocks before a period
// began in which ours renewed.
func TestMergeAccountRenewal(t *testing.T) {
	a := file("a", t0, 1)
	for _, c := range []struct{ base, ours, theirs, want uint64 }{
		{5, 5, 5, 5},
		{5, 6, 5, 5},
		{5, 5, 6, 5},
		{5, 7, 6, 6},
		{0, 6, 0, 0},
	} {
		base, ours, theirs := idx(a), idx(a), idx(a)
		base.Renewed, ours.Renewed, theirs.Renewed = c.base, c.ours, c.theirs
		if got := Merge(base, ours, theirs).Renewed; got != c.want {
			t.Errorf("base %d, ours %d, theirs %d: merged %d, want %d", c.base, c.ours, c.theirs, got, c.want)
		}
	}
	if got := Merge(nil, &Index{Renewed: 4}, nil).Renewed; got != 0 {
		t.Errorf("merging with a nil index kept renewal %d", got)
	}
	x := idx(a)
	x.Renewed = 8
	if x.Clone().Renewed != 8 {
		t.Error("Clone drops the renewal")
	}
}
