package format

// The root block, docs/spec.md "The root block". It is encrypted
// (block.go) with root_key and stored at root_id, written with
// root_proof; its payload is:
//
//	root  = uint8 version (= 1)
//	      ‖ account_key[32] ‖ owner_secret[32]
//	      ‖ uint64be index_len ‖ uint32be index_count
//	      ‖ (id[16] ‖ etag[16]) × index_count
//
// account_key encrypts the index blocks; owner_secret derives every block's
// write proof (keys.go). index_len is the length of the encoded index
// before padding (indexfile.Join needs it); the index blocks are listed in
// order with the ETag each had when written, so a server that returns an
// older or another block is caught even before authentication.
//
// UnmarshalRoot refuses: another version, a zero account_key or
// owner_secret, a length other than exactly what
// index_count implies (so neither truncation nor trailing bytes), a count
// the payload could not hold, an ID that is not a v4 UUID, an ID listed
// twice, and an index_len of zero with blocks or non-zero without.
//
// Changing the password encrypts the same Root at the new locator and deletes
// the old one; nothing else is re-encrypted. A recovery code encrypts the
// same Root at the code's locator.

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

// RootVersion is the root format version MarshalRoot writes and
// UnmarshalRoot accepts.
const RootVersion = 1

const (
	rootHeaderLen = 1 + KeySize + KeySize + 8 + 4
	rootRefLen    = 16 + wire.ETagSize
)

// Root holds an account's secrets and where its index is.
type Root struct {
	AccountKey  Key             // encrypts the index blocks
	OwnerSecret OwnerSecret     // derives every block's write proof
	IndexLen    uint64          // bytes of the encoded index, before padding
	Index       []indexfile.Ref // the index blocks, in order
}

// NewRoot returns the root of a new account: fresh random secrets and no
// index yet.
func NewRoot() (*Root, error) { return newRoot(rand.Reader) }

func newRoot(rnd io.Reader) (*Root, error) {
	r := &Root{}
	var err error
	if r.AccountKey, err = newKey(rnd); err != nil {
		return nil, err
	}
	k, err := newKey(rnd)
	if err != nil {
		return nil, err
	}
	r.OwnerSecret = OwnerSecret(k)
	return r, nil
}

// ErrBadRoot is returned for a root payload that does not decode.
var ErrBadRoot = wire.Sentinel(wire.KindTampered, "client: root block is malformed")

// MarshalRoot encodes r as a root payload.
func MarshalRoot(r *Root) ([]byte, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	b := make([]byte, 0, rootHeaderLen+rootRefLen*len(r.Index))
	b = append(b, RootVersion)
	b = append(b, r.AccountKey[:]...)
	b = append(b, r.OwnerSecret[:]...)
	b = binary.BigEndian.AppendUint64(b, r.IndexLen)
	b = binary.BigEndian.AppendUint32(b, uint32(len(r.Index)))
	for _, ref := range r.Index {
		b = append(b, ref.ID[:]...)
		b = append(b, ref.ETag[:]...)
	}
	return b, nil
}

// UnmarshalRoot decodes a root payload strictly.
func UnmarshalRoot(b []byte) (*Root, error) {
	if len(b) < 1 {
		return nil, fmt.Errorf("%w: empty", ErrBadRoot)
	}
	if b[0] != RootVersion {
		return nil, fmt.Errorf("%w: version %d (this client reads version %d)", ErrBadRoot, b[0], RootVersion)
	}
	if len(b) < rootHeaderLen {
		return nil, fmt.Errorf("%w: truncated", ErrBadRoot)
	}
	r := &Root{}
	p := b[1:]
	p = p[copy(r.AccountKey[:], p):]
	p = p[copy(r.OwnerSecret[:], p):]
	r.IndexLen = binary.BigEndian.Uint64(p)
	n := binary.BigEndian.Uint32(p[8:])
	p = p[12:]
	if uint64(n) > uint64(len(p))/rootRefLen {
		return nil, fmt.Errorf("%w: %d index blocks do not fit in %d bytes", ErrBadRoot, n, len(p))
	}
	if len(p) != int(n)*rootRefLen {
		return nil, fmt.Errorf("%w: %d bytes after the index list", ErrBadRoot, len(p)-int(n)*rootRefLen)
	}
	if n > 0 {
		r.Index = make([]indexfile.Ref, n)
		for i := range r.Index {
			p = p[copy(r.Index[i].ID[:], p):]
			p = p[copy(r.Index[i].ETag[:], p):]
		}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Root) Validate() error {
	// A zero secret is never random; it would mean a writer that forgot
	// to generate one, and every block encrypted with it would be readable.
	if r.AccountKey == (Key{}) || r.OwnerSecret == (OwnerSecret{}) {
		return fmt.Errorf("%w: a secret is zero", ErrBadRoot)
	}
	if (r.IndexLen == 0) != (len(r.Index) == 0) {
		return fmt.Errorf("%w: index length %d with %d index blocks", ErrBadRoot, r.IndexLen, len(r.Index))
	}
	if uint64(len(r.Index)) > (1<<32 - 1) {
		return fmt.Errorf("%w: too many index blocks", ErrBadRoot)
	}
	seen := make(map[wire.ID]struct{}, len(r.Index))
	for _, ref := range r.Index {
		if err := ref.ID.Validate(); err != nil {
			return fmt.Errorf("%w: index block id: %v", ErrBadRoot, err)
		}
		if _, dup := seen[ref.ID]; dup {
			return fmt.Errorf("%w: an index block is listed twice", ErrBadRoot)
		}
		seen[ref.ID] = struct{}{}
	}
	return nil
}

// EncryptRoot encrypts r into the root block at loc.ID. Write it with
// loc.Proof.
func EncryptRoot(loc Locator, r *Root, blockSize int) ([]byte, error) {
	p, err := MarshalRoot(r)
	if err != nil {
		return nil, err
	}
	return Encrypt(loc.Key, loc.ID, p, blockSize)
}

// DecryptRoot authenticates and decodes the root block read from loc.ID.
func DecryptRoot(loc Locator, block []byte, blockSize int) (*Root, error) {
	p, err := Decrypt(loc.Key, loc.ID, block, blockSize)
	if err != nil {
		return nil, err
	}
	return UnmarshalRoot(p)
}
