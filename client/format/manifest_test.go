package format

import (
	"errors"
	"testing"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/internal/seeded"
)

func TestPointerRoundTrip(t *testing.T) {
	refs := []indexfile.Ref{{ID: seeded.BlockID("m1")}, {ID: seeded.BlockID("m2")}}
	refs[0].ETag[0], refs[1].ETag[15] = 1, 2
	ptr := MarshalPointer(1500, refs)
	if len(ptr) != PointerLen(len(refs)) {
		t.Fatalf("pointer of %d bytes, PointerLen says %d", len(ptr), PointerLen(len(refs)))
	}
	v, n, got, err := UnmarshalPointer(ptr, smallBlock)
	if err != nil || v != PointerVersion || n != 1500 || len(got) != 2 || got[0] != refs[0] || got[1] != refs[1] {
		t.Fatalf("UnmarshalPointer = %d, %d, %v, %v", v, n, got, err)
	}
	v1 := append([]byte{PointerV1}, ptr[1:]...)
	if v, _, _, err := UnmarshalPointer(v1, smallBlock); err != nil || v != PointerV1 {
		t.Fatalf("a version 1 pointer: %d, %v", v, err)
	}
	for name, bad := range map[string][]byte{
		"empty":            nil,
		"unknown version":  append([]byte{3}, ptr[1:]...),
		"truncated":        ptr[:len(ptr)-1],
		"trailing bytes":   append(append([]byte(nil), ptr...), 0),
		"no blocks":        MarshalPointer(0, nil),
		"longer than held": MarshalPointer(2*PayloadCapacity(smallBlock)+1, refs),
	} {
		if _, _, _, err := UnmarshalPointer(bad, smallBlock); !errors.Is(err, ErrBadPointer) {
			t.Errorf("%s: %v, want ErrBadPointer", name, err)
		}
	}
}

func TestCapability(t *testing.T) {
	fileKey := testKey("file")
	m1, m2 := seeded.BlockID("manifest 1"), seeded.BlockID("manifest 2")
	k1 := CapKey(fileKey, m1)
	if k1 != CapKey(fileKey, m1) || k1 == CapKey(fileKey, m2) || k1 == Key(fileKey) {
		t.Fatal("cap_key is not a function of the file key and the manifest alone")
	}
	c := Capability{Manifest: m1, Key: k1}
	got, err := ParseCapability("  " + c.String() + "\n")
	if err != nil || got != c {
		t.Fatalf("ParseCapability(String()) = %v", err)
	}
	s := c.String()
	for _, bad := range []string{"", s[1:], s + "A", s[:len(s)-1], "blind2" + s[6:]} {
		if _, err := ParseCapability(bad); !errors.Is(err, ErrBadCapability) {
			t.Errorf("ParseCapability(%q) = %v, want ErrBadCapability", bad, err)
		}
	}
}
