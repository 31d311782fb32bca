package client

// Sharing, DESIGN.md §7 "Sharing". `blind share NAME` writes a manifest
// for the file and prints a capability; `blind fetch CAP` reads the file
// with no account.
//
//	capability = "blind1:" ‖ manifest_id (36-character UUID) ‖ ":" ‖ base64url(cap_key) (43 characters, no padding)
//	cap_key    = HKDF-SHA256(ikm = file_key, salt = "", info = "blindstore/v1/share" ‖ manifest_id[16])
//
// The manifest is an index leaf (indexfile, format 2) holding the one file
// under its base name, with its key, size, hash and chunk list or inline
// content, but no renewal period and no manifest of its own. It is
// split and padded like the first clients' index (Padmé, then whole
// blocks), sealed with cap_key into blocks m_1…m_k under fresh IDs, and a
// pointer block m_0 at manifest_id lists them:
//
//	pointer = uint8 version (= 2) ‖ uint64be encoded_len ‖ uint32be k ‖ (id[16] ‖ etag[16]) × k
//
// Pointer version 1 (the first clients') is read too: its blocks hold a
// format 1 index of the one file. Sharing marks the file's key as shared
// (File.KeyShared), so that a later version of the file gets a new key.
//
// sealed with cap_key too. The ETags let fetch catch a server that returns
// other blocks; the AEAD (cap_key, block ID as associated data) catches
// altered ones, and the file's chunks are checked as a get checks them.
//
// cap_key derives from the file key rather than being drawn at random so
// that sharing a file again prints the same capability without keeping
// another secret in the index; it reveals nothing the manifest it opens
// does not already hold (the file key). The index records the manifest's
// blocks in File.Manifest, so that the owner's renewals keep it alive.
// Replacing or removing the file deletes its manifest: the capability then
// finds nothing.

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
)

const (
	capPrefix     = "blind1:"
	infoShare     = "blindstore/v1/share"
	pointerVer    = 2
	pointerV1     = 1
	pointerHeader = 1 + 8 + 4
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
var ErrBadCapability = &Error{Kind: KindInvalid, Msg: "not a blindstore capability (expected blind1:<id>:<key>, as 'blind share' prints it)"}

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

func capKey(fileKey [KeySize]byte, manifest wire.ID) Key {
	var k Key
	expand(fileKey[:], infoShare+string(manifest[:]), k[:])
	return k
}

// Share returns the capability of the file name, writing its manifest
// first if it has none.
func (a *Account) Share(ctx context.Context, name string) (Capability, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	f, err := a.lookup(name)
	if err != nil {
		return Capability{}, err
	}
	if len(f.Manifest) > 0 {
		id := f.Manifest[0].ID
		return Capability{Manifest: id, Key: capKey(f.Key, id)}, nil
	}
	refs, cap, err := a.writeManifest(ctx, &f)
	if err != nil {
		return Capability{}, err
	}
	_, err = a.update(ctx, func(x *indexfile.Index) error {
		g := x.Lookup(name)
		if g == nil || g.Key != f.Key {
			return &Error{Kind: KindConflict, Msg: fmt.Sprintf("%q changed on another device while it was being shared: share it again", name)}
		}
		if len(g.Manifest) == 0 {
			g.Manifest = refs
		}
		g.KeyShared = true
		return nil
	})
	if err != nil {
		if KindOf(err) != KindNetwork { // else the head may refer to it
			a.deleteRefs(ctx, refs)
		}
		return Capability{}, err
	}
	if cur, _ := a.lookup(name); len(cur.Manifest) > 0 && cur.Manifest[0].ID != refs[0].ID {
		// Another device shared it at the same moment and won.
		a.deleteRefs(ctx, refs)
		id := cur.Manifest[0].ID
		return Capability{Manifest: id, Key: capKey(cur.Key, id)}, nil
	}
	return cap, nil
}

// writeManifest writes f's manifest and returns its blocks, pointer first.
func (a *Account) writeManifest(ctx context.Context, f *indexfile.File) ([]indexfile.Ref, Capability, error) {
	m := *f
	m.Name = path.Base(f.Name)
	m.Manifest, m.Renewed, m.KeyShared = nil, 0, false
	encoded, err := indexfile.EncodeLeaf([]indexfile.File{m})
	if err != nil {
		return nil, Capability{}, err
	}
	bs := a.cfg.BlockSize
	payloads, err := indexfile.Split(encoded, PayloadCapacity(bs))
	if err != nil {
		return nil, Capability{}, err
	}
	if pointerHeader+len(payloads)*rootRefLen > PayloadCapacity(bs) {
		return nil, Capability{}, &Error{Kind: KindInvalid, Msg: "the file has too many blocks to share with one manifest"}
	}
	pid := wire.NewID()
	key := capKey(f.Key, pid)
	items := make([]BatchItem, 0, 1+len(payloads))
	refs := make([]indexfile.Ref, 1, 1+len(payloads))
	ptr := []byte{pointerVer}
	ptr = binary.BigEndian.AppendUint64(ptr, uint64(len(encoded)))
	ptr = binary.BigEndian.AppendUint32(ptr, uint32(len(payloads)))
	for _, p := range payloads {
		id := wire.NewID()
		data, err := Seal(key, id, p, bs)
		if err != nil {
			return nil, Capability{}, err
		}
		etag := wire.ETagOf(data)
		ptr = append(append(ptr, id[:]...), etag[:]...)
		items = append(items, BatchItem{ID: id, Proof: a.root.OwnerSecret.WriteProof(id), Data: data})
		refs = append(refs, indexfile.Ref{ID: id, ETag: etag})
	}
	pdata, err := Seal(key, pid, ptr, bs)
	if err != nil {
		return nil, Capability{}, err
	}
	refs[0] = indexfile.Ref{ID: pid, ETag: wire.ETagOf(pdata)}
	items = append(items, BatchItem{ID: pid, Proof: a.root.OwnerSecret.WriteProof(pid), Data: pdata})
	// Manifest blocks first, the pointer last: a capability that works
	// finds everything it lists.
	if err := a.remote.PutBatch(ctx, items); err != nil {
		a.deleteRefs(ctx, refs)
		return nil, Capability{}, wrap(KindNetwork, "writing the share manifest", err)
	}
	return refs, Capability{Manifest: pid, Key: key}, nil
}

// Unshare deletes the file's manifest, so that its capability finds
// nothing. Whoever fetched the file already keeps what they fetched.
func (a *Account) Unshare(ctx context.Context, name string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.update(ctx, func(x *indexfile.Index) error {
		g := x.Lookup(name)
		if g == nil {
			return &Error{Kind: KindNotFound, Msg: fmt.Sprintf("no file %q in the account", name)}
		}
		g.Manifest = nil
		return nil
	})
	return err
}

// OpenCapability reads and verifies the manifest a capability names and
// returns the shared file's entry (its Name is the owner's base name).
func OpenCapability(ctx context.Context, remote *Remote, c Capability) (*indexfile.File, error) {
	cfg, err := remote.Config(ctx)
	if err != nil {
		return nil, err
	}
	bs := cfg.BlockSize
	data, _, err := remote.Get(ctx, c.Manifest, nil)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, &Error{Kind: KindNotFound, Msg: "the shared file is gone: its owner removed or replaced it, or it expired"}
		}
		return nil, err
	}
	ptr, err := Open(c.Key, c.Manifest, data, bs)
	if err != nil {
		return nil, wrap(KindTampered, "the share manifest (or a wrong capability key)", err)
	}
	if len(ptr) < pointerHeader || (ptr[0] != pointerVer && ptr[0] != pointerV1) {
		return nil, &Error{Kind: KindTampered, Msg: "the share manifest is malformed"}
	}
	encLen := binary.BigEndian.Uint64(ptr[1:])
	k := binary.BigEndian.Uint32(ptr[9:])
	if uint64(len(ptr)-pointerHeader) != uint64(k)*rootRefLen || k == 0 || encLen > uint64(k)*uint64(PayloadCapacity(bs)) {
		return nil, &Error{Kind: KindTampered, Msg: "the share manifest is malformed"}
	}
	refs := make([]indexfile.Ref, k)
	for i := range refs {
		o := pointerHeader + i*rootRefLen
		copy(refs[i].ID[:], ptr[o:])
		copy(refs[i].ETag[:], ptr[o+16:])
	}
	payloads := make([][]byte, k)
	err = parallel(ctx, int(k), remote.Parallel, func(ctx context.Context, i int) error {
		data, etag, err := remote.Get(ctx, refs[i].ID, nil)
		if err != nil {
			if KindOf(err) == KindNotFound {
				return &Error{Kind: KindNotFound, Msg: "part of the shared file's manifest is gone"}
			}
			return err
		}
		if etag != refs[i].ETag {
			return &Error{Kind: KindTampered, Msg: "the server returned another block than the share manifest lists"}
		}
		p, err := Open(c.Key, refs[i].ID, data, bs)
		if err != nil {
			return wrap(KindTampered, "the share manifest", err)
		}
		payloads[i] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	encoded, err := indexfile.Join(payloads, int(encLen))
	if err != nil {
		return nil, wrap(KindTampered, "the share manifest", err)
	}
	var files []indexfile.File
	if ptr[0] == pointerV1 {
		var x *indexfile.Index
		if x, err = indexfile.Decode(encoded); err == nil {
			files = x.Files
		}
	} else {
		files, err = indexfile.DecodeLeaf(encoded)
	}
	if err != nil || len(files) != 1 {
		return nil, &Error{Kind: KindTampered, Msg: "the share manifest is malformed", Err: err}
	}
	return &files[0], nil
}

// Fetch writes the shared file of capability c to w, verified as a get
// verifies, and returns its entry.
func Fetch(ctx context.Context, remote *Remote, c Capability, w io.Writer, progress Progress) (*indexfile.File, error) {
	f, err := OpenCapability(ctx, remote, c)
	if err != nil {
		return nil, err
	}
	cfg, err := remote.Config(ctx)
	if err != nil {
		return nil, err
	}
	return f, download(ctx, remote, cfg, f, w, progress)
}

// FetchFile writes the shared file f, as OpenCapability returned it, to
// w, verified as a get verifies.
func FetchFile(ctx context.Context, remote *Remote, f *indexfile.File, w io.Writer, progress Progress) error {
	cfg, err := remote.Config(ctx)
	if err != nil {
		return err
	}
	return download(ctx, remote, cfg, f, w, progress)
}
