package client

// The put pipeline's encrypting stage. The chunker must run in order (a cut
// depends on whether the chunk before matched an old one), and so must
// the whole file's SHA-256; what each chunk costs on its own — its
// SHA-256 (unless the reuse check needed it first), its encryption and its
// block's ETag, two thirds of a put's CPU — is done by a pool of encryptors,
// and a collector puts the results back in file order.
//
// Copies: the chunker copies each chunk into the payload area of a
// frame buffer (length ‖ payload ‖ zero padding, the plaintext of a
// block), one of a few that circulate and so stay in cache; the encryptor
// encrypts that frame straight into a block buffer. The chunk is copied
// once, into a warm buffer, and the cold block buffer is written only by
// the cipher, on an encryptor; encrypting into a block buffer in place would
// cost a copy into it first.

import (
	cryptorand "crypto/rand"
	"crypto/sha256"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
)

// encTask is one chunk on its way from the chunker to a batch. The
// chunker fills it and hands it both to an encryptor and, in file order, to
// the collector, which reads it only once done is closed.
type encTask struct {
	chunk  indexfile.Chunk // Size and Mark; Hash if hashed; Ref once encrypted (or prev's, if reused)
	hashed bool            // chunk.Hash is already set
	reused bool            // chunk.Ref is a block of prev: nothing to encrypt
	frame  []byte          // the chunk's frame, payload at frame[format.LengthSize:]; the encryptor's until done
	block  []byte          // the block buffer to encrypt into
	// endsBatch: block is the last of the batch of buffers lent with
	// it, so the collector ends a batch write with this chunk.
	endsBatch bool
	item      BatchItem // the encrypted block
	err       error
	done      chan struct{}
}

// encrypt encrypts t's frame under key into t.block, under a fresh ID.
func (t *encTask) encrypt(key format.Key, owner format.OwnerSecret) {
	n := int(t.chunk.Size)
	if !t.hashed {
		t.chunk.Hash = sha256.Sum256(t.frame[format.LengthSize : format.LengthSize+n])
	}
	var nonce [format.NonceSize]byte
	if _, err := cryptorand.Read(nonce[:]); err != nil {
		t.err = err
		return
	}
	id := wire.NewID()
	data := format.EncryptFrameInto(t.block, key, id, t.frame, n, &nonce)
	t.chunk.Ref = indexfile.Ref{ID: id, ETag: wire.ETagOf(data)}
	t.item = BatchItem{ID: id, Proof: owner.WriteProof(id), Data: data, ETag: t.chunk.Ref.ETag}
}

// runEncryptor encrypts the tasks it receives until tasks is closed, giving
// each task's frame back to frames before telling the collector.
func runEncryptor(tasks <-chan *encTask, frames chan<- []byte, key format.Key, owner format.OwnerSecret) {
	for t := range tasks {
		t.encrypt(key, owner)
		frames <- t.frame
		t.frame = nil
		close(t.done)
	}
}
