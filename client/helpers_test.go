package client

import (
	"crypto/sha256"

	"github.com/blindstore/blindstore/client/format"
)

// testKey derives a fixed key from seed.
func testKey(seed string) format.Key { return format.Key(sha256.Sum256([]byte(seed))) }
