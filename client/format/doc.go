// Package format is the client's side of the blindstore format, as
// docs/spec.md specifies it: how keys derive from what a user knows, and
// how every kind of block is laid out and encrypted. It is pure: no I/O,
// no HTTP, no account state; package client does the reading and writing.
//
// Each file opens with the part of the spec it implements, in the order
// a reader of the spec meets them:
//
//	keys.go     passwords (normalisation, Argon2id), device keys and
//	            recovery codes → root locators (HKDF); the owner secret →
//	            per-block write and renew proofs; the chunker's seed
//	block.go    every block: XChaCha20-Poly1305 over a length-framed,
//	            zero-padded payload, the block ID bound as associated data
//	root.go     the root block: the account's secrets
//	head.go     the head block: where the index is, which roots exist
//	index.go    the index encrypted into blocks (the first clients' layout)
//	manifest.go sharing: capabilities, cap_key and the manifest's pointer
//	redact.go   secrets print and log as a placeholder
//
// Decryption is strict everywhere: a block or payload that does not
// authenticate or decode exactly is refused with an error callers branch
// on with errors.Is (ErrTampered, ErrBlockSize, ErrBadFrame, ErrBadRoot,
// ErrBadHead, ErrBadPointer, ErrBadCapability, ErrBadRecoveryCode).
package format
