// Package seeded derives the test data that several packages' tests
// share from seeds: the same bytes and block IDs on every run, so that
// golden files and test vectors stay put and a failure reproduces.
package seeded

import (
	"crypto/sha256"
	"io"
	"math/rand/v2"

	"github.com/blindstore/blindstore/wire"
)

// Stream returns an endless ChaCha8 stream seeded by seed (its two low
// bytes: test files that differ by seed, not secrets).
func Stream(seed uint64) io.Reader {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	return rand.NewChaCha8(s)
}

// Bytes returns the first n bytes of Stream(seed).
func Bytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	_, _ = io.ReadFull(Stream(seed), b)
	return b
}

// BlockID derives a fixed version 4 block ID from seed: the first 16
// bytes of SHA-256("id:"+seed) with the version and variant bits set.
func BlockID(seed string) wire.ID {
	s := sha256.Sum256([]byte("id:" + seed))
	id := wire.ID(s[:16])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}
