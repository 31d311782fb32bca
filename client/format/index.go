package format

// Encrypting the index, docs/spec.md "The index file":
//
//	encoded  = indexfile.Encode(index)
//	payloads = indexfile.Split(encoded, PayloadCapacity(block_size))   (Padmé, then whole blocks)
//	block_i  = Encrypt(account_key, id_i, payload_i)                      id_i: fresh random v4 IDs
//	root'    = root with index_len = len(encoded), index = [(id_i, ETag(block_i))]
//
// Every update writes new index blocks (create-only, each with the owner
// secret's write proof for its ID), then compare-and-swaps the root to
// root' (If-Match), then deletes the blocks of the old root's index. A
// crash at any point leaves a valid root; blocks it does not reference are
// never renewed and expire by themselves.
//
// Opening checks each block's ETag against the root before authenticating
// it, then joins, strips the zero padding and decodes strictly.

import (
	"crypto/rand"
	"fmt"
	"io"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/indexfile"
)

// EncryptedBlock is a block ready to be written.
type EncryptedBlock struct {
	ID   wire.ID
	Data []byte    // exactly the block size
	ETag wire.ETag // wire.ETagOf(Data)
}

// EncryptIndex encrypts idx under r's account key into new blocks, and returns
// them with the root that refers to them: a copy of r whose Index and
// IndexLen describe the new blocks. r itself is unchanged, so r.Index
// still lists the blocks to delete once the new root is in place.
func (r *Root) EncryptIndex(idx *indexfile.Index, blockSize int) ([]EncryptedBlock, *Root, error) {
	encoded, err := indexfile.Encode(idx)
	if err != nil {
		return nil, nil, err
	}
	return r.encryptIndex(encoded, blockSize, rand.Reader)
}

// encryptIndex encrypts an encoded index, drawing IDs and nonces from rnd.
func (r *Root) encryptIndex(encoded []byte, blockSize int, rnd io.Reader) ([]EncryptedBlock, *Root, error) {
	if err := checkBlockSize(blockSize); err != nil {
		return nil, nil, err
	}
	payloads, err := indexfile.Split(encoded, PayloadCapacity(blockSize))
	if err != nil {
		return nil, nil, err
	}
	next := *r
	next.IndexLen = uint64(len(encoded))
	next.Index = make([]indexfile.Ref, len(payloads))
	blocks := make([]EncryptedBlock, len(payloads))
	for i, p := range payloads {
		id, err := newID(rnd)
		if err != nil {
			return nil, nil, err
		}
		var nonce [NonceSize]byte
		if _, err := io.ReadFull(rnd, nonce[:]); err != nil {
			return nil, nil, fmt.Errorf("client: generating a nonce: %w", err)
		}
		data, err := encryptWithNonce(r.AccountKey, id, p, blockSize, &nonce)
		if err != nil {
			return nil, nil, err
		}
		blocks[i] = EncryptedBlock{ID: id, Data: data, ETag: wire.ETagOf(data)}
		next.Index[i] = indexfile.Ref{ID: id, ETag: blocks[i].ETag}
	}
	return blocks, &next, nil
}

// newID draws a v4 UUID from rnd.
func newID(rnd io.Reader) (wire.ID, error) {
	var id wire.ID
	if _, err := io.ReadFull(rnd, id[:]); err != nil {
		return wire.ID{}, fmt.Errorf("client: generating a block id: %w", err)
	}
	id[6] = id[6]&0x0f | 0x40
	id[8] = id[8]&0x3f | 0x80
	return id, nil
}

// DecryptIndex decrypts and decodes the index from its blocks, given in the
// order of r.Index. An account without an index has an empty one.
func (r *Root) DecryptIndex(blocks [][]byte, blockSize int) (*indexfile.Index, error) {
	encoded, err := r.decryptIndex(blocks, blockSize)
	if err != nil {
		return nil, err
	}
	if encoded == nil {
		return &indexfile.Index{}, nil
	}
	return indexfile.Decode(encoded)
}

// decryptIndex returns the encoded index (nil if there is none).
func (r *Root) decryptIndex(blocks [][]byte, blockSize int) ([]byte, error) {
	if len(blocks) != len(r.Index) {
		return nil, fmt.Errorf("client: the root lists %d index blocks, got %d", len(r.Index), len(blocks))
	}
	if len(r.Index) == 0 {
		return nil, nil
	}
	payloads := make([][]byte, len(blocks))
	for i, b := range blocks {
		ref := r.Index[i]
		if wire.ETagOf(b) != ref.ETag {
			return nil, fmt.Errorf("%w: index block %d is not the version the root refers to", ErrTampered, i)
		}
		p, err := Decrypt(r.AccountKey, ref.ID, b, blockSize)
		if err != nil {
			return nil, fmt.Errorf("client: index block %d: %w", i, err)
		}
		payloads[i] = p
	}
	if r.IndexLen > uint64(len(blocks))*uint64(PayloadCapacity(blockSize)) {
		return nil, fmt.Errorf("%w: index length exceeds its blocks", ErrBadRoot)
	}
	encoded, err := indexfile.Join(payloads, int(r.IndexLen))
	if err != nil {
		return nil, err
	}
	return encoded, nil
}
