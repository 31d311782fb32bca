package client

// The put pipeline's sealing stage. The chunker must run in order (a cut
// depends on whether the chunk before matched an old one), and so must
// the whole file's SHA-256; what each chunk costs on its own — its
// SHA-256 (unless the reuse check needed it first), its seal and its
// block's ETag, two thirds of a put's CPU — is done by a pool of sealers,
// and a collector puts the results back in file order.
//
// The chunker copies each chunk straight into the payload area of the
// block buffer it will be sealed in, so a chunk is copied once, not twice
// (into a chunk buffer, then into the block), and the sealer encrypts it
// in place.

import (
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/indexfile"
)

// payloadOffset is where a block's payload starts: after the nonce and
// the frame's length field.
const payloadOffset = NonceSize + lengthSize

// sealTask is one chunk on its way from the chunker to a batch. The
// chunker fills it and hands it both to a sealer and, in file order, to
// the collector, which reads it only once done is closed.
type sealTask struct {
	chunk  indexfile.Chunk // Size and Mark; Hash if hashed; Ref once sealed (or prev's, if reused)
	hashed bool            // chunk.Hash is already set
	reused bool            // chunk.Ref is a block of prev: nothing to seal
	buf    []byte          // the block buffer, payload at buf[payloadOffset:]
	item   BatchItem       // the sealed block
	err    error
	done   chan struct{}
}

// seal seals t's chunk under key in a block of fresh ID, and closes
// t.done.
func (t *sealTask) seal(key Key, owner OwnerSecret) {
	defer close(t.done)
	n := int(t.chunk.Size)
	if !t.hashed {
		t.chunk.Hash = sha256.Sum256(t.buf[payloadOffset : payloadOffset+n])
	}
	var nonce [NonceSize]byte
	if _, err := cryptorand.Read(nonce[:]); err != nil {
		t.err = err
		return
	}
	id := blobstore.NewID()
	data := sealInPlace(t.buf, key, id, n, &nonce)
	t.chunk.Ref = indexfile.Ref{ID: id, ETag: blobstore.ETagOf(data)}
	t.item = BatchItem{ID: id, Proof: owner.WriteProof(id), Data: data}
}

// sealInPlace is sealInto for a payload of n bytes already at
// out[payloadOffset:]: the same block, without copying the payload in.
func sealInPlace(out []byte, key Key, id blobstore.ID, n int, nonce *[NonceSize]byte) []byte {
	copy(out, nonce[:])
	frame := out[NonceSize : len(out)-TagSize]
	binary.BigEndian.PutUint32(frame, uint32(n))
	// The buffer held another block before: the padding must be zero.
	clear(frame[lengthSize+n:])
	return sealFrame(key, id, out, frame, nonce)
}

// runSealer seals the tasks it receives until tasks is closed.
func runSealer(tasks <-chan *sealTask, key Key, owner OwnerSecret) {
	for t := range tasks {
		t.seal(key, owner)
	}
}
