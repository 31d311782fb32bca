// Package client is the blindstore client: it derives every key on the
// user's side, encrypts blocks so that the server holds only fixed-size
// ciphertext under random IDs, and keeps the account's root and index.
//
// It is built in layers, each on the ones before it:
//
//	format/      the format, pure: keys, blocks, root, head, index blocks,
//	             share manifests (docs/spec.md; format/doc.go lists its files)
//	formatapi.go the format's names that callers reach through package client
//	devicekey.go device key files
//	store.go     Store: the server's operations the client needs, served by
//	remote.go    *Remote, the HTTP API as a client sees it, with typed errors,
//	             and, in the tests (memstore_test.go), MemoryRemote: the
//	             same semantics in memory, decided by the server core's own
//	             planner, so the account's logic is tested without a server
//	indextx.go   the index transaction: read the head and the index, change
//	             it, commit by compare-and-swap of the head, merge on a lost race
//	cache.go     BlockCache: index blocks kept between commands (blockcache/
//	             keeps them on disk), used only when they check out
//	lazyindex.go WithLazyIndex: the leaves a command needs, read when needed;
//	             a one-file put reads and writes its name's leaves alone
//	listing.go   List, and the sealed listing cache that serves it
//	account.go   signup, login, recovery, resume, passwd, account deletion
//	put.go       streaming put: format/chunker.go cuts, encpipe.go encrypts, batches
//	             upload; localput.go puts local files in batches
//	get.go       streaming get and ranges, verified block by block, and atomic
//	             writes of local files (directio.go stages them)
//	share.go     writing and reading share manifests by capability
//	renew.go     renewal, "safe until", renew-proof exports
//	tokens.go    Privacy Pass tokens for servers that charge: the wallet, the
//	             period's allotment, key consistency
//	sync*.go     two-way sync of a directory with the account, and its watch
//	tls.go       the HTTP client and its certificate errors
//
// Errors carry a Kind (errors.go) that callers branch on: the CLI maps
// each to an exit code.
//
// The package must never send a password, a key, a plaintext or a file
// name to the server, and never logs block IDs, proofs, ETags or keys.
package client
