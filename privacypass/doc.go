// Package privacypass is blindstore's anonymous write quota (docs/design.md
// §11): Privacy Pass tokens of type 0x0002 (RFC 9578 §6, blind RSA 2048)
// presented with the PrivateToken HTTP authentication scheme (RFC 9577).
//
//	token.go     TokenChallenge, Token, token keys (SPKI), verification
//	header.go    WWW-Authenticate and Authorization headers
//	issuance.go  TokenRequest and TokenResponse, the client's blinding and
//	             finalization, the issuer's blind signature
//	directory.go the issuer directory (RFC 9578 §4)
//	redeemer.go  the blob server's side: keys from the directory, challenge,
//	             verification, double-spend check
//	issuerapi.go the issuer's routes, allotment answer and invite codes
//	issuerclient.go  the invite holder's side of the issuer's HTTP API
//	issuer/      `blindstored issuer`: keys rotated each period, invite
//	             codes with an allotment per period, issuance over HTTP;
//	             the only part that keeps a database (bbolt)
//	spent/       spent sets: bbolt (spent.db) and PostgreSQL
//
// Redemption needs only the issuer's public key and the standard library
// (crypto/rsa); issuance uses github.com/cloudflare/circl's blind RSA.
//
// What this package must never do: log or store a token, a nonce beside
// anything else, an invite code in clear, or a client address; keep any
// time with a spent nonce; or let the issuer learn anything but an invite
// code and how many tokens it took this period. The blob server never
// learns which issuance a token came from (the signature is blind), and
// never records which token paid for which block.
package privacypass
