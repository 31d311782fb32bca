package format

// The head block: where an account's index is. The root format (root.go)
// can hold the index list; this client keeps it in one more block, the
// head, so that the password root and the recovery root can both reach
// the current index without two copies to keep in step. Roots then hold
// only the account secrets (a Root with no index) and never change after
// signup except when the password does; the compare-and-swap of an index
// update happens on the head.
//
// The head's locator derives from the secrets every root holds:
//
//	head_master = HKDF-SHA256(ikm = account_key ‖ owner_secret, salt = "",
//	                          info = "blindstore/v1/head", 32 bytes)
//	head_id, head_proof, head_key = the root locator derivation (keys.go)
//	                                applied to head_master
//
// and its payload, encrypted like every block (block.go), is in version 2:
//
//	head  = uint8 version (= 2)
//	      ‖ uint64be generation
//	      ‖ uint32be dir_count ‖ (id[16] ‖ etag[16]) × dir_count
//	      ‖ uint8 root_count ‖ (uint8 kind ‖ id[16] ‖ write_proof[32]) × root_count
//
// listing the dirs of the index tree (indexfile/tree.go), in order. The
// first clients wrote version 1, whose index was one padded blob:
//
//	head  = uint8 version (= 1)
//	      ‖ uint64be generation
//	      ‖ uint64be index_len ‖ uint32be index_count ‖ (id[16] ‖ etag[16]) × index_count
//	      ‖ uint8 root_count ‖ (uint8 kind ‖ id[16] ‖ write_proof[32]) × root_count
//
// This client reads both, and upgrades a version 1 account when it opens
// it (client/indextx.go); it writes only version 2.
//
// generation is the index's, so that a session that has seen generation g
// recognizes a head rolled back to an older one. The roots are listed so
// that login can renew the recovery root (whose locator only the code
// gives), and passwd, recovery and account deletion can delete the roots
// they replace. kind is 1 for a password root, 2 for a recovery root.
//
// UnmarshalHead refuses another version, truncation, trailing bytes,
// invalid or repeated ids, an index_len of zero with blocks or non-zero
// without, and root kinds other than 1 and 2.

import (
	"encoding/binary"
	"fmt"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

// HeadVersion is the head format version this client writes; it reads
// HeadV1 too.
const (
	HeadVersion = 2
	HeadV1      = 1
)

const infoHead = "blindstore/v1/head"

// RootKind says which secret locates a root.
type RootKind uint8

// Kinds of roots.
const (
	RootPassword RootKind = 1
	RootRecovery RootKind = 2
)

// RootRef names a root block and holds its write proof.
type RootRef struct {
	Kind  RootKind
	ID    wire.ID
	Proof wire.WriteProof
}

// Head is where an account's index is.
type Head struct {
	// Version is 2, or 1 for a head of the first clients (zero: 2).
	Version    uint8
	Generation uint64
	// IndexLen is version 1's encoded index length; zero in version 2.
	IndexLen uint64
	// Index lists the index blocks of version 1, the dirs of version 2.
	Index []indexfile.Ref
	Roots []RootRef
}

func (h *Head) FormatVersion() uint8 {
	if h.Version == 0 {
		return HeadVersion
	}
	return h.Version
}

// ErrBadHead is returned for a head payload that does not decode.
var ErrBadHead = wire.Sentinel(wire.KindTampered, "client: head block is malformed")

// HeadLocator returns the locator of the account's head block.
func (r *Root) HeadLocator() Locator {
	ikm := make([]byte, 0, 2*KeySize)
	ikm = append(append(ikm, r.AccountKey[:]...), r.OwnerSecret[:]...)
	var m master
	expand(ikm, infoHead, m[:])
	return m.locator()
}

// MarshalHead encodes h.
func MarshalHead(h *Head) ([]byte, error) {
	if err := h.validate(); err != nil {
		return nil, err
	}
	b := []byte{h.FormatVersion()}
	b = binary.BigEndian.AppendUint64(b, h.Generation)
	if h.FormatVersion() == HeadV1 {
		b = binary.BigEndian.AppendUint64(b, h.IndexLen)
	}
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.Index)))
	for _, ref := range h.Index {
		b = append(append(b, ref.ID[:]...), ref.ETag[:]...)
	}
	b = append(b, uint8(len(h.Roots)))
	for _, rr := range h.Roots {
		b = append(b, uint8(rr.Kind))
		b = append(append(b, rr.ID[:]...), rr.Proof[:]...)
	}
	return b, nil
}

// UnmarshalHead decodes a head payload strictly.
func UnmarshalHead(b []byte) (*Head, error) {
	if len(b) < 1 || (b[0] != HeadVersion && b[0] != HeadV1) {
		return nil, fmt.Errorf("%w: unknown version", ErrBadHead)
	}
	h := &Head{Version: b[0]}
	p := b[1:]
	if need := map[uint8]int{HeadV1: 8 + 8 + 4, HeadVersion: 8 + 4}[h.Version]; len(p) < need {
		return nil, fmt.Errorf("%w: truncated", ErrBadHead)
	}
	h.Generation = binary.BigEndian.Uint64(p)
	p = p[8:]
	if h.Version == HeadV1 {
		h.IndexLen = binary.BigEndian.Uint64(p)
		p = p[8:]
	}
	n := binary.BigEndian.Uint32(p)
	p = p[4:]
	if uint64(n) > uint64(len(p))/rootRefLen {
		return nil, fmt.Errorf("%w: truncated index list", ErrBadHead)
	}
	if n > 0 {
		h.Index = make([]indexfile.Ref, n)
	}
	for i := range h.Index {
		p = p[copy(h.Index[i].ID[:], p):]
		p = p[copy(h.Index[i].ETag[:], p):]
	}
	if len(p) < 1 {
		return nil, fmt.Errorf("%w: truncated", ErrBadHead)
	}
	k := int(p[0])
	p = p[1:]
	const rootLen = 1 + 16 + wire.HashSize
	if len(p) != k*rootLen {
		return nil, fmt.Errorf("%w: %d bytes for %d roots", ErrBadHead, len(p), k)
	}
	for range k {
		rr := RootRef{Kind: RootKind(p[0])}
		p = p[1:]
		p = p[copy(rr.ID[:], p):]
		p = p[copy(rr.Proof[:], p):]
		h.Roots = append(h.Roots, rr)
	}
	if err := h.validate(); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Head) validate() error {
	switch h.FormatVersion() {
	case HeadVersion:
		if h.IndexLen != 0 {
			return fmt.Errorf("%w: an index length in a version 2 head", ErrBadHead)
		}
	case HeadV1:
		if (h.IndexLen == 0) != (len(h.Index) == 0) {
			return fmt.Errorf("%w: index length %d with %d index blocks", ErrBadHead, h.IndexLen, len(h.Index))
		}
	default:
		return fmt.Errorf("%w: unknown version", ErrBadHead)
	}
	if uint64(len(h.Index)) > 1<<32-1 || len(h.Roots) > 255 {
		return fmt.Errorf("%w: too many blocks", ErrBadHead)
	}
	seen := make(map[wire.ID]struct{}, len(h.Index)+len(h.Roots))
	check := func(id wire.ID) error {
		if err := id.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrBadHead, err)
		}
		if _, dup := seen[id]; dup {
			return fmt.Errorf("%w: a block is listed twice", ErrBadHead)
		}
		seen[id] = struct{}{}
		return nil
	}
	for _, ref := range h.Index {
		if err := check(ref.ID); err != nil {
			return err
		}
	}
	for _, rr := range h.Roots {
		if rr.Kind != RootPassword && rr.Kind != RootRecovery {
			return fmt.Errorf("%w: unknown root kind %d", ErrBadHead, rr.Kind)
		}
		if err := check(rr.ID); err != nil {
			return err
		}
	}
	return nil
}

// IndexRoot returns the Root through which the index blocks listed in h
// are encrypted and opened (root.go and index.go): r's secrets with h's
// index list.
func (h *Head) IndexRoot(r *Root) *Root {
	return &Root{AccountKey: r.AccountKey, OwnerSecret: r.OwnerSecret, IndexLen: h.IndexLen, Index: h.Index}
}

func (h *Head) Clone() *Head {
	c := *h
	c.Index = append([]indexfile.Ref(nil), h.Index...)
	c.Roots = append([]RootRef(nil), h.Roots...)
	return &c
}
