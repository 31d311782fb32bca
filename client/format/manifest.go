package format

// Sharing, docs/spec.md "Sharing": the capability a user passes on and
// the pointer block of a share manifest.
//
//	capability = "blind1:" ‖ manifest_id (36-character UUID) ‖ ":" ‖ base64url(cap_key) (43 characters, no padding)
//	cap_key    = HKDF-SHA256(ikm = file_key, salt = "", info = "blindstore/v1/share" ‖ manifest_id[16])
//
// The manifest is an index leaf (indexfile, format 2) holding the one file
// under its base name, split and padded like the first clients' index
// (Padmé, then whole blocks) and encrypted with cap_key into blocks
// m_1…m_k under fresh IDs; a pointer block m_0 at manifest_id, encrypted
// with cap_key too, lists them:
//
//	pointer = uint8 version (= 2) ‖ uint64be encoded_len ‖ uint32be k ‖ (id[16] ‖ etag[16]) × k
//
// Pointer version 1 (the first clients') is read too: its blocks hold a
// format 1 index of the one file.
//
// cap_key derives from the file key rather than being drawn at random so
// that sharing a file again prints the same capability without keeping
// another secret in the index; it reveals nothing the manifest it opens
// does not already hold (the file key).

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/indexfile"
)

const (
	capPrefix     = "blind1:"
	infoShare     = "blindstore/v1/share"
	pointerHeader = 1 + 8 + 4
)

// Versions of the manifest's pointer block.
const (
	PointerVersion = 2 // holds an indexfile leaf (EncodeLeaf)
	PointerV1      = 1 // the first clients': holds a whole index (Encode)
)

// Capability grants read access to one shared file.
type Capability struct {
	Manifest wire.ID
	Key      Key
}

// String formats the capability for the user to pass on.
func (c Capability) String() string {
	return capPrefix + c.Manifest.String() + ":" + base64.RawURLEncoding.EncodeToString(c.Key[:])
}

// Format prints a placeholder under %v and %s: a capability is a secret
// the user prints on purpose, with String.
func (c Capability) Format(f fmt.State, _ rune) { writeRedacted(f) }

// ErrBadCapability is returned for a string that is not a capability.
var ErrBadCapability = errors.New("not a blindstore capability (expected blind1:<id>:<key>, as 'blind share' prints it)")

// ParseCapability parses a capability strictly: the prefix, a canonical
// v4 UUID, and exactly 32 bytes of unpadded base64url.
func ParseCapability(s string) (Capability, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), capPrefix)
	if !ok {
		return Capability{}, ErrBadCapability
	}
	idStr, keyStr, ok := strings.Cut(rest, ":")
	if !ok {
		return Capability{}, ErrBadCapability
	}
	id, err := wire.ParseID(idStr)
	if err != nil || id.String() != idStr {
		return Capability{}, ErrBadCapability
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(keyStr)
	if err != nil || len(raw) != KeySize {
		return Capability{}, ErrBadCapability
	}
	c := Capability{Manifest: id}
	copy(c.Key[:], raw)
	return c, nil
}

// CapKey derives the key of the manifest at manifest from a file's key.
func CapKey(fileKey [KeySize]byte, manifest wire.ID) Key {
	var k Key
	expand(fileKey[:], infoShare+string(manifest[:]), k[:])
	return k
}

// PointerLen is the length of a pointer payload listing n blocks.
func PointerLen(n int) int { return pointerHeader + n*rootRefLen }

// MarshalPointer encodes a version 2 pointer to the manifest blocks
// refs, which hold encodedLen bytes of encoded leaf.
func MarshalPointer(encodedLen int, refs []indexfile.Ref) []byte {
	ptr := make([]byte, 0, PointerLen(len(refs)))
	ptr = append(ptr, PointerVersion)
	ptr = binary.BigEndian.AppendUint64(ptr, uint64(encodedLen))
	ptr = binary.BigEndian.AppendUint32(ptr, uint32(len(refs)))
	for _, r := range refs {
		ptr = append(append(ptr, r.ID[:]...), r.ETag[:]...)
	}
	return ptr
}

// ErrBadPointer is returned for a pointer payload that does not decode.
var ErrBadPointer = errors.New("the share manifest is malformed")

// UnmarshalPointer decodes a pointer payload strictly, for blocks of
// blockSize bytes: its version (PointerVersion or PointerV1), the
// encoded length and the manifest blocks, at least one.
func UnmarshalPointer(ptr []byte, blockSize int) (version uint8, encodedLen uint64, refs []indexfile.Ref, err error) {
	if len(ptr) < pointerHeader || (ptr[0] != PointerVersion && ptr[0] != PointerV1) {
		return 0, 0, nil, ErrBadPointer
	}
	encLen := binary.BigEndian.Uint64(ptr[1:])
	k := binary.BigEndian.Uint32(ptr[9:])
	if uint64(len(ptr)-pointerHeader) != uint64(k)*rootRefLen || k == 0 || encLen > uint64(k)*uint64(PayloadCapacity(blockSize)) {
		return 0, 0, nil, ErrBadPointer
	}
	refs = make([]indexfile.Ref, k)
	for i := range refs {
		o := pointerHeader + i*rootRefLen
		copy(refs[i].ID[:], ptr[o:])
		copy(refs[i].ETag[:], ptr[o+16:])
	}
	return ptr[0], encLen, refs, nil
}
