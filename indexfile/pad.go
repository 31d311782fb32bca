package indexfile

// Padding, docs/spec.md: the encoded index of L bytes is stored in
//
//	blocks = Padmé(⌈Padmé(L) / payload⌉)
//
// block payloads of `payload` bytes each, the encoding followed by zeros.
// Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files
// and Communication with PURBs", PETS 2019) rounds L up so that only
// O(log log L) bits of it remain:
//
//	E = ⌊log2 L⌋,  S = ⌊log2 E⌋ + 1,  mask = 2^(E−S) − 1,
//	Padmé(L) = (L + mask) &^ mask          (L < 2: L itself)
//
// with an overhead below 12%. The server sees only the number of blocks,
// so the byte-level rounding alone would still reveal ⌈L/payload⌉ exactly
// for every index below about 32 blocks (at 64 KiB blocks Padmé's step
// stays under one block until L reaches 2 MiB); Padmé applied again to the
// count of blocks is what keeps the count, which is all that shows, padded.
// The length L itself is kept in the root block, so Join needs no marker.

import (
	"fmt"
	"math/bits"
)

// Padme rounds n up by the Padmé scheme. n must be below 2^63.
func Padme(n uint64) uint64 {
	if n < 2 {
		return n
	}
	if n >= 1<<63 {
		panic("indexfile: Padme of a length beyond 2^63")
	}
	e := bits.Len64(n) - 1       // ⌊log2 n⌋ ≥ 1
	s := bits.Len64(uint64(e))   // ⌊log2 e⌋ + 1
	mask := uint64(1)<<(e-s) - 1 // e ≥ s always, since e ≥ ⌊log2 e⌋ + 1 for e ≥ 1
	return (n + mask) &^ mask
}

// PaddedBlocks returns how many payloads of payloadSize bytes hold an
// encoding of n bytes once padded.
func PaddedBlocks(n, payloadSize int) (int, error) {
	if payloadSize <= 0 || n < 0 || uint64(n) > 2*MaxDecodedSize {
		return 0, fmt.Errorf("indexfile: cannot pad %d bytes into payloads of %d", n, payloadSize)
	}
	p := Padme(uint64(n))
	blocks := (p + uint64(payloadSize) - 1) / uint64(payloadSize)
	return int(Padme(blocks)), nil
}

// Split pads an encoding and cuts it into payloads of exactly payloadSize
// bytes, ready to be encrypted one per block. The caller keeps len(encoded)
// (in the root) for Join.
func Split(encoded []byte, payloadSize int) ([][]byte, error) {
	nb, err := PaddedBlocks(len(encoded), payloadSize)
	if err != nil {
		return nil, err
	}
	padded := make([]byte, nb*payloadSize)
	copy(padded, encoded)
	out := make([][]byte, nb)
	for i := range out {
		out[i] = padded[i*payloadSize : (i+1)*payloadSize : (i+1)*payloadSize]
	}
	return out, nil
}

// Join concatenates payloads and returns the first n bytes, refusing
// payloads that hold fewer than n bytes or padding that is not zero.
func Join(payloads [][]byte, n int) ([]byte, error) {
	total := 0
	for _, p := range payloads {
		total += len(p)
	}
	if n < 0 || n > total {
		return nil, fmt.Errorf("%w: index length %d exceeds the %d bytes of its blocks", ErrCorrupt, n, total)
	}
	out := make([]byte, 0, n)
	for _, p := range payloads {
		if rest := n - len(out); rest < len(p) {
			for _, c := range p[rest:] {
				if c != 0 {
					return nil, fmt.Errorf("%w: index padding is not zero", ErrCorrupt)
				}
			}
			p = p[:rest]
		}
		out = append(out, p...)
	}
	return out, nil
}
