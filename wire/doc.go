// Package wire is blindstore's API as both sides see it: what a server
// answers and a client sends, and nothing of how either works inside.
//
// It holds the block ID, the proofs a client derives and the hash a
// store keeps of them, the ETag; the problem codes of problem+json
// answers, the kinds they belong to, and the one table that maps a code
// to its kind, a kind to its HTTP status, and a kind to the exit code of
// the command-line tools; the block-size limits, header names and media
// types; the JSON bodies of every endpoint; and the framing of a batch
// write, encoded by clients and decoded by the server with the same code.
//
// The server (package blobstore and its HTTP API) and the client (package
// client, the blind command, the bench) import it; it imports nothing of
// either, only the standard library and github.com/google/uuid, so that
// a client build never pulls in a store.
package wire
