package client

import (
	"crypto/sha256"
	"math/rand/v2"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
)

// testKey derives a fixed key from seed.
func testKey(seed string) format.Key { return format.Key(sha256.Sum256([]byte(seed))) }

// testBlockID derives a fixed v4 block ID from seed.
func testBlockID(seed string) wire.ID {
	s := sha256.Sum256([]byte("id:" + seed))
	id := wire.ID(s[:16])
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id
}

// seeded returns n bytes of a ChaCha8 stream seeded by seed: test files
// that are the same on every run.
func seeded(seed uint64, n int) []byte {
	var s [32]byte
	s[0], s[1] = byte(seed), byte(seed>>8)
	b := make([]byte, n)
	_, _ = rand.NewChaCha8(s).Read(b)
	return b
}
