package format

// The block format, docs/spec.md "Every block". Every block the client
// writes, whatever it holds (root, index, file data), is:
//
//	block = nonce ‖ XChaCha20-Poly1305(key, nonce, frame, ad)
//	nonce = 24 random bytes, fresh for every encryption
//	ad    = "blindstore/v1/block" ‖ id          (id: the block's 16-byte UUID)
//	frame = uint32be(len(payload)) ‖ payload ‖ zero bytes up to the capacity
//
// so that len(block) = block_size exactly and
//
//	PayloadCapacity(block_size) = block_size − 24 (nonce) − 16 (tag) − 4 (length)
//
// Binding the ID in the associated data means a server that answers a read
// with another block's ciphertext, or with altered bytes, fails
// authentication (ErrTampered). The version string in it keeps a future
// format's blocks from opening as this one's. Random nonces make two encryptions
// of the same plaintext unlinkable; nothing is deduplicated.
//
// Decrypt is strict: a wrong length, a failed authentication, a length field
// beyond the capacity and non-zero padding are all refused.

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/indexfile"
	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the block format.
const (
	NonceSize     = chacha20poly1305.NonceSizeX // 24
	TagSize       = chacha20poly1305.Overhead   // 16
	LengthSize    = 4
	BlockOverhead = NonceSize + TagSize + LengthSize // 44
)

// blockADPrefix begins the associated data of every block.
const blockADPrefix = "blindstore/v1/block"

// Errors of Decrypt. Callers branch on them with errors.Is.
var (
	// ErrTampered: the block does not authenticate under this key and ID.
	// Either the server returned another block's data or altered bytes,
	// or the key is wrong.
	ErrTampered = wire.Sentinel(wire.KindTampered, "client: block failed authentication: the server returned data that was not written under this id and key")
	// ErrBlockSize: the block is not exactly the deployment's block size.
	ErrBlockSize = wire.Sentinel(wire.KindTampered, "client: block has the wrong size")
	// ErrBadFrame: the block authenticates but its frame is malformed,
	// which only a faulty writer holding the key can cause.
	ErrBadFrame = wire.Sentinel(wire.KindTampered, "client: block authenticates but its framing is malformed")
)

// PayloadCapacity is the largest payload a block of blockSize bytes holds.
func PayloadCapacity(blockSize int) int { return blockSize - BlockOverhead }

func checkBlockSize(blockSize int) error {
	if err := wire.ValidateBlockSize(blockSize); err != nil {
		return fmt.Errorf("client: %w", err)
	}
	return nil
}

// Encrypt encrypts payload into a block of exactly blockSize bytes to be
// stored under id. blockSize must be one a deployment may choose (see
// wire.ValidateBlockSize), and payload at most PayloadCapacity(blockSize).
func Encrypt(key Key, id wire.ID, payload []byte, blockSize int) ([]byte, error) {
	var nonce [NonceSize]byte
	if _, err := io.ReadFull(rand.Reader, nonce[:]); err != nil {
		return nil, fmt.Errorf("client: generating a nonce: %w", err)
	}
	return encryptWithNonce(key, id, payload, blockSize, &nonce)
}

// encryptWithNonce is Encrypt with a given nonce, for golden vectors. A nonce
// must never be used twice with one key.
func encryptWithNonce(key Key, id wire.ID, payload []byte, blockSize int, nonce *[NonceSize]byte) ([]byte, error) {
	if err := checkBlockSize(blockSize); err != nil {
		return nil, err
	}
	if len(payload) > PayloadCapacity(blockSize) {
		return nil, fmt.Errorf("client: payload of %d bytes exceeds the block capacity of %d", len(payload), PayloadCapacity(blockSize))
	}
	return encryptInto(make([]byte, blockSize), key, id, payload, nonce), nil
}

// encryptInto encrypts payload into out, whose length is the block size, which
// the caller has checked along with the payload's length. It lets the
// streaming put reuse a fixed set of block buffers.
func encryptInto(out []byte, key Key, id wire.ID, payload []byte, nonce *[NonceSize]byte) []byte {
	blockSize := len(out)
	copy(out, nonce[:])
	frame := out[NonceSize : blockSize-TagSize]
	binary.BigEndian.PutUint32(frame, uint32(len(payload)))
	clear(frame[LengthSize+copy(frame[LengthSize:], payload):])
	return encryptFrame(key, id, out, frame, nonce)
}

// encryptFrame encrypts frame, which is out[NonceSize:len(out)-TagSize], in
// place; out already starts with nonce.
func encryptFrame(key Key, id wire.ID, out, frame []byte, nonce *[NonceSize]byte) []byte {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("client: chacha20poly1305: " + err.Error()) // only for a wrong key length
	}
	aead.Seal(frame[:0], nonce[:], frame, blockAD(id))
	return out
}

// FrameSize is the length of a block's plaintext frame.
func FrameSize(blockSize int) int { return blockSize - NonceSize - TagSize }

// EncryptFrameInto makes the block encryptInto makes of the n-byte payload at
// frame[LengthSize:], encrypting frame (FrameSize(len(out)) bytes) into
// out; it writes frame's length field and padding first.
func EncryptFrameInto(out []byte, key Key, id wire.ID, frame []byte, n int, nonce *[NonceSize]byte) []byte {
	binary.BigEndian.PutUint32(frame, uint32(n))
	// The frame held another chunk before: the padding must be zero.
	clear(frame[LengthSize+n:])
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

func blockAD(id wire.ID) []byte {
	ad := make([]byte, 0, len(blockADPrefix)+len(id))
	return append(append(ad, blockADPrefix...), id[:]...)
}

// Decrypt authenticates and decrypts a block read from id and returns its
// payload. It never modifies block.
func Decrypt(key Key, id wire.ID, block []byte, blockSize int) ([]byte, error) {
	if err := checkBlockSize(blockSize); err != nil {
		return nil, err
	}
	if len(block) != blockSize {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrBlockSize, len(block), blockSize)
	}
	return DecryptInto(make([]byte, 0, blockSize-NonceSize-TagSize), key, id, block)
}

// DecryptInto is Decrypt for a block of checked size, decrypting into dst's
// storage (grown if too small) so that streaming reads reuse buffers.
func DecryptInto(dst []byte, key Key, id wire.ID, block []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		panic("client: chacha20poly1305: " + err.Error())
	}
	frame, err := aead.Open(dst[:0], block[:NonceSize], block[NonceSize:], blockAD(id))
	if err != nil {
		return nil, ErrTampered
	}
	n := binary.BigEndian.Uint32(frame)
	body := frame[LengthSize:]
	if uint64(n) > uint64(len(body)) {
		return nil, fmt.Errorf("%w: payload length %d exceeds the capacity of %d", ErrBadFrame, n, len(body))
	}
	for _, b := range body[n:] {
		if b != 0 {
			return nil, fmt.Errorf("%w: padding is not zero", ErrBadFrame)
		}
	}
	return body[:n:n], nil
}

// InlineMax returns the largest file kept inline in the index for a block
// size (docs/spec.md §10.4): a 32nd of a block's payload, and never more
// than the index accepts (indexfile.MaxInline), which blocks of 2 MiB and
// more would otherwise pass.
func InlineMax(blockSize int) int { return min(PayloadCapacity(blockSize)/32, indexfile.MaxInline) }
