// Package client is the blindstore client: it derives every key on the
// user's side, encrypts blocks so that the server holds only fixed-size
// ciphertext under random IDs, and keeps the account's root and index.
//
// The cryptographic core is written so it can be checked line by line
// against DESIGN.md §7; each file opens with the part of the spec it
// implements:
//
//	keys.go   passwords, device keys and recovery codes → root locators;
//	          owner secret → per-block write proofs
//	block.go  the block format: XChaCha20-Poly1305, framed and padded
//	root.go   the root block and the encrypted index blocks
//	head.go   the head block: where the index is, which roots exist
//	remote.go the HTTP API as a client sees it, with typed errors
//	account.go signup, login, recovery, passwd, deletion, and index
//	          updates by compare-and-swap with merge
//	files.go  streaming put and get, verified block by block
//	renew.go  renewal, "safe until", renew-proof exports
//	share.go  manifests and capabilities
//	tokens.go Privacy Pass tokens for servers that charge (DESIGN.md §11):
//	          the wallet, the period's allotment, key consistency
//
// Errors carry a Kind (errors.go) that callers branch on: the CLI maps
// each to an exit code.
//
// The package must never send a password, a key, a plaintext or a file
// name to the server, and never logs block IDs, proofs, ETags or keys.
package client
