package client

import (
	"crypto/hkdf"
	"crypto/sha256"
)

// LocalKey derives a 32-byte key for data this device keeps on its own
// disk for purpose (blind serve webdav's journal): from the account key,
// so that only whoever holds the session can read that data, and a
// different key for each purpose.
func (a *Account) LocalKey(purpose string) [32]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.localKey("blindstore/v1/local/" + purpose)
}

// localKey derives the key that info names from the account key (which
// no operation of the account changes); the caller may hold a.mu.
func (a *Account) localKey(info string) [32]byte {
	var k [32]byte
	b, err := hkdf.Key(sha256.New, a.root.AccountKey[:], nil, info, len(k))
	if err != nil {
		// HKDF-SHA256 yields up to 8160 bytes; 32 are asked for.
		panic("client: hkdf: " + err.Error())
	}
	copy(k[:], b)
	return k
}
