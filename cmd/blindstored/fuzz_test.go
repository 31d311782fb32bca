package main

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/blindstore/blindstore/bucketer"
)

// FuzzParseKey feeds a bucket key file as an operator may leave it: a key
// loads only as 64 hex characters (white space around them aside) or 32
// raw bytes, and always as exactly 32 bytes.
func FuzzParseKey(f *testing.F) {
	k := bytes.Repeat([]byte{0xab}, bucketer.KeySize)
	f.Add([]byte(hex.EncodeToString(k) + "\n"))
	f.Add(k)
	f.Add([]byte(" " + hex.EncodeToString(k)[:63] + "g "))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		key, err := parseKey(in)
		if err != nil {
			return
		}
		if len(key) != bucketer.KeySize {
			t.Fatalf("a key of %d bytes", len(key))
		}
		hexForm := bytes.EqualFold(bytes.TrimSpace(in), []byte(hex.EncodeToString(key)))
		if !hexForm && !bytes.Equal(in, key) {
			t.Fatalf("accepted %q as key %x", in, key)
		}
	})
}
