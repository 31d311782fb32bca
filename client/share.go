package client

// Sharing, docs/spec.md "Sharing". `blind share NAME` writes a manifest
// for the file and prints a capability; `blind fetch CAP` reads the file
// with no account. The capability, cap_key and the manifest's pointer
// block are the format's (format/manifest.go); this file writes and reads
// them.
//
// The manifest holds the one file under its base name, with its key,
// size, hash and chunk list or inline content, but no renewal period and
// no manifest of its own. Sharing marks the file's key as shared
// (File.KeyShared), so that a later version of the file gets a new key.
//
// The ETags in the pointer let fetch catch a server that returns other
// blocks; the AEAD (cap_key, block ID as associated data) catches
// altered ones, and the file's chunks are checked as a get checks them.
//
// The index records the manifest's blocks in File.Manifest, so that the
// owner's renewals keep it alive. Replacing or removing the file deletes
// its manifest: the capability then finds nothing.

import (
	"context"
	"fmt"
	"io"
	"path"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
)

// ErrBadCapability is returned for a string that is not a capability.
var ErrBadCapability = &Error{Kind: KindInvalid, Msg: format.ErrBadCapability.Error()}

// ParseCapability parses a capability strictly (format.ParseCapability),
// failing with ErrBadCapability, which the CLI reports as bad input.
func ParseCapability(s string) (format.Capability, error) {
	c, err := format.ParseCapability(s)
	if err != nil {
		return format.Capability{}, ErrBadCapability
	}
	return c, nil
}

// Share returns the capability of the file name, writing its manifest
// first if it has none.
func (a *Account) Share(ctx context.Context, name string) (format.Capability, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.needIndex(ctx); err != nil {
		return format.Capability{}, err
	}
	f, err := a.lookup(name)
	if err != nil {
		return format.Capability{}, err
	}
	if len(f.Manifest) > 0 {
		id := f.Manifest[0].ID
		return format.Capability{Manifest: id, Key: format.CapKey(f.Key, id)}, nil
	}
	refs, cap, err := a.writeManifest(ctx, &f)
	if err != nil {
		return format.Capability{}, err
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
		return format.Capability{}, err
	}
	if cur, _ := a.lookup(name); len(cur.Manifest) > 0 && cur.Manifest[0].ID != refs[0].ID {
		// Another device shared it at the same moment and won.
		a.deleteRefs(ctx, refs)
		id := cur.Manifest[0].ID
		return format.Capability{Manifest: id, Key: format.CapKey(cur.Key, id)}, nil
	}
	return cap, nil
}

// writeManifest writes f's manifest and returns its blocks, pointer first.
func (a *Account) writeManifest(ctx context.Context, f *indexfile.File) ([]indexfile.Ref, format.Capability, error) {
	m := *f
	m.Name = path.Base(f.Name)
	m.Manifest, m.Renewed, m.KeyShared = nil, 0, false
	encoded, err := indexfile.EncodeLeaf([]indexfile.File{m})
	if err != nil {
		return nil, format.Capability{}, err
	}
	bs := a.cfg.BlockSize
	payloads, err := indexfile.Split(encoded, format.PayloadCapacity(bs))
	if err != nil {
		return nil, format.Capability{}, err
	}
	if format.PointerLen(len(payloads)) > format.PayloadCapacity(bs) {
		return nil, format.Capability{}, &Error{Kind: KindInvalid, Msg: "the file has too many blocks to share with one manifest"}
	}
	pid := wire.NewID()
	key := format.CapKey(f.Key, pid)
	items := make([]BatchItem, 0, 1+len(payloads))
	refs := make([]indexfile.Ref, 1, 1+len(payloads))
	for _, p := range payloads {
		id := wire.NewID()
		data, err := format.Encrypt(key, id, p, bs)
		if err != nil {
			return nil, format.Capability{}, err
		}
		etag := wire.ETagOf(data)
		items = append(items, BatchItem{ID: id, Proof: a.root.OwnerSecret.WriteProof(id), Data: data})
		refs = append(refs, indexfile.Ref{ID: id, ETag: etag})
	}
	ptr := format.MarshalPointer(len(encoded), refs[1:])
	pdata, err := format.Encrypt(key, pid, ptr, bs)
	if err != nil {
		return nil, format.Capability{}, err
	}
	refs[0] = indexfile.Ref{ID: pid, ETag: wire.ETagOf(pdata)}
	items = append(items, BatchItem{ID: pid, Proof: a.root.OwnerSecret.WriteProof(pid), Data: pdata})
	// Manifest blocks first, the pointer last: a capability that works
	// finds everything it lists.
	if err := a.remote.PutBatch(ctx, items); err != nil {
		a.deleteRefs(ctx, refs)
		return nil, format.Capability{}, wrap(KindNetwork, "writing the share manifest", err)
	}
	return refs, format.Capability{Manifest: pid, Key: key}, nil
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
func OpenCapability(ctx context.Context, remote Store, c format.Capability) (*indexfile.File, error) {
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
	ptr, err := format.Decrypt(c.Key, c.Manifest, data, bs)
	if err != nil {
		return nil, wrap(KindTampered, "the share manifest (or a wrong capability key)", err)
	}
	version, encLen, refs, err := format.UnmarshalPointer(ptr, bs)
	if err != nil {
		return nil, &Error{Kind: KindTampered, Msg: "the share manifest is malformed"}
	}
	k := len(refs)
	payloads := make([][]byte, k)
	err = parallel(ctx, k, remote.parallelism(), func(ctx context.Context, i int) error {
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
		p, err := format.Decrypt(c.Key, refs[i].ID, data, bs)
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
	if version == format.PointerV1 {
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
func Fetch(ctx context.Context, remote Store, c format.Capability, w io.Writer, progress Progress) (*indexfile.File, error) {
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
func FetchFile(ctx context.Context, remote Store, f *indexfile.File, w io.Writer, progress Progress) error {
	cfg, err := remote.Config(ctx)
	if err != nil {
		return err
	}
	return download(ctx, remote, cfg, f, w, progress)
}
