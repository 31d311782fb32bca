package client

// The put pipeline's sealing stage. The chunker must run in order (a cut
// depends on whether the chunk before matched an old one), and so must
// the whole file's SHA-256; what each chunk costs on its own — its
// SHA-256 (unless the reuse check needed it first), its seal and its
// block's ETag, two thirds of a put's CPU — is done by a pool of sealers,
// and a collector puts the results back in file order.
//
// Copies: the chunker copies each chunk into the payload area of a
// frame buffer (length ‖ payload ‖ zero padding, the plaintext of a
// block), one of a few that circulate and so stay in cache; the sealer
// encrypts that frame straight into a block buffer. The chunk is copied
// once, into a warm buffer, and the cold block buffer is written only by
// the cipher, on a sealer; sealing into a block buffer in place would
// cost a copy into it first.

import (
	cryptorand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"

	"github.com/blindstore/blindstore/indexfile"
	"github.com/blindstore/blindstore/wire"
	"golang.org/x/crypto/chacha20poly1305"
)

// frameSize is the length of a block's plaintext frame.
func frameSize(blockSize int) int { return blockSize - NonceSize - TagSize }

// sealTask is one chunk on its way from the chunker to a batch. The
// chunker fills it and hands it both to a sealer and, in file order, to
// the collector, which reads it only once done is closed.
type sealTask struct {
	chunk  indexfile.Chunk // Size and Mark; Hash if hashed; Ref once sealed (or prev's, if reused)
	hashed bool            // chunk.Hash is already set
	reused bool            // chunk.Ref is a block of prev: nothing to seal
	frame  []byte          // the chunk's frame, payload at frame[lengthSize:]; the sealer's until done
	block  []byte          // the block buffer to seal into
	item   BatchItem       // the sealed block
	err    error
	done   chan struct{}
}

// seal seals t's frame under key into t.block, under a fresh ID.
func (t *sealTask) seal(key Key, owner OwnerSecret) {
	n := int(t.chunk.Size)
	if !t.hashed {
		t.chunk.Hash = sha256.Sum256(t.frame[lengthSize : lengthSize+n])
	}
	var nonce [NonceSize]byte
	if _, err := cryptorand.Read(nonce[:]); err != nil {
		t.err = err
		return
	}
	id := wire.NewID()
	data := sealFrameInto(t.block, key, id, t.frame, n, &nonce)
	t.chunk.Ref = indexfile.Ref{ID: id, ETag: wire.ETagOf(data)}
	t.item = BatchItem{ID: id, Proof: owner.WriteProof(id), Data: data, ETag: t.chunk.Ref.ETag}
}

// sealFrameInto makes the block sealInto makes of the n-byte payload at
// frame[lengthSize:], encrypting frame (frameSize(len(out)) bytes) into
// out; it writes frame's length field and padding first.
func sealFrameInto(out []byte, key Key, id wire.ID, frame []byte, n int, nonce *[NonceSize]byte) []byte {
	binary.BigEndian.PutUint32(frame, uint32(n))
	// The frame held another chunk before: the padding must be zero.
	clear(frame[lengthSize+n:])
	copy(out, nonce[:])
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("client: chacha20poly1305: " + err.Error()) // only for a wrong key length
	}
	// out has room for the ciphertext and tag after the nonce, so Seal
	// writes them there.
	aead.Seal(out[NonceSize:NonceSize], nonce[:], frame, blockAD(id))
	return out
}

// runSealer seals the tasks it receives until tasks is closed, giving
// each task's frame back to frames before telling the collector.
func runSealer(tasks <-chan *sealTask, frames chan<- []byte, key Key, owner OwnerSecret) {
	for t := range tasks {
		t.seal(key, owner)
		frames <- t.frame
		t.frame = nil
		close(t.done)
	}
}
