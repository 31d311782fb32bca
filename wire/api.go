package wire

import "fmt"

// DefaultBlockSize is the block size of a deployment that does not choose.
const DefaultBlockSize = 65536

// Block sizes a deployment may choose: a power of two so clients can frame
// plaintext simply, small enough to stay a single database value.
const (
	MinBlockSize = 1024
	MaxBlockSize = 4 << 20
)

// ValidateBlockSize checks a deployment's block size.
func ValidateBlockSize(n int) error {
	if n < MinBlockSize || n > MaxBlockSize || n&(n-1) != 0 {
		return fmt.Errorf("blobstore: block size must be a power of two between %d and %d, got %d", MinBlockSize, MaxBlockSize, n)
	}
	return nil
}

// MaxManifestBytes caps the JSON manifest of a batch write.
const MaxManifestBytes = 64 << 10

// Routes of the API, version 1.
const (
	PathConfig  = "/v1/config"
	PathBlocks  = "/v1/blocks"  // POST: a batch write
	PathBlock   = "/v1/blocks/" // + id: GET, HEAD, PUT, DELETE one block
	PathRenew   = "/v1/renew"
	PathRead    = "/v1/read" // POST: several blocks in one answer
	PathOpenAPI = "/v1/openapi.json"
)

// HeaderProof carries a write proof, base64url without padding.
const HeaderProof = "Blind-Proof"

// Media types of request and response bodies.
const (
	MediaBlock   = "application/octet-stream"
	MediaJSON    = "application/json"
	MediaBatch   = "application/vnd.blindstore.batch"
	MediaBlocks  = "application/vnd.blindstore.blocks" // the answer of POST /v1/read
	MediaProblem = "application/problem+json"
)

// Problem is an RFC 9457 problem details object with the stable `code`
// extension member: the body of every error answer. Detail is written for
// the client; it never holds a block ID, proof or ETag the server did not
// receive from that client.
type Problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
	Code   string `json:"code"`
}

// Config is the body of GET /v1/config: everything a client must know to
// talk to this deployment, and every limit it may run into.
type Config struct {
	Version          string       `json:"version"`
	BlockSize        int          `json:"block_size"`
	PeriodSeconds    int64        `json:"period_seconds"`
	RetentionPeriods int          `json:"retention_periods"`
	CurrentPeriod    uint64       `json:"current_period"`
	Limits           ConfigLimits `json:"limits"`
	// Tokens is present when writes are paid with Privacy Pass tokens.
	Tokens *ConfigTokens `json:"tokens,omitempty"`
}

// ConfigLimits are the request limits of /v1/config.
type ConfigLimits struct {
	RenewBatch int `json:"renew_batch"` // ids per POST /v1/renew
	WriteBatch int `json:"write_batch"` // blocks per POST /v1/blocks
	// MaxBatchRefs is the most entries without data (deletions and
	// checks) one POST /v1/blocks may carry; its presence says the
	// server takes them, and atomic batches.
	MaxBatchRefs      int   `json:"max_batch_refs"`
	MaxHeaderBytes    int   `json:"max_header_bytes"`     // request line and headers
	MaxManifestBytes  int   `json:"max_manifest_bytes"`   // JSON manifest of POST /v1/blocks
	MaxBatchBodyBytes int64 `json:"max_batch_body_bytes"` // whole body of POST /v1/blocks
	MaxRenewBodyBytes int64 `json:"max_renew_body_bytes"` // whole body of POST /v1/renew
	// ReadBatch is the most ids one POST /v1/read may name; absent on
	// servers without that route, whose clients read block by block.
	ReadBatch        int   `json:"read_batch,omitempty"`
	MaxReadBodyBytes int64 `json:"max_read_body_bytes,omitempty"` // whole body of POST /v1/read
	// Failed probes allowed per client address; absent when the limiter
	// does not say.
	ProbeRatePerSecond *float64 `json:"probe_rate_per_second,omitempty"`
	ProbeBurst         *int     `json:"probe_burst,omitempty"`
	// Blocks each client address may write in an open store (no
	// tokens); absent when there is no such limit.
	WriteRatePerSecond *float64 `json:"write_rate_per_second,omitempty"`
	WriteBurst         *int     `json:"write_burst,omitempty"`
	// MaxBlocks is the capacity cap; absent when there is none.
	MaxBlocks                int64   `json:"max_blocks,omitempty"`
	ReadHeaderTimeoutSeconds float64 `json:"read_header_timeout_seconds"`
	ReadTimeoutSeconds       float64 `json:"read_timeout_seconds"` // whole request, body included
	WriteTimeoutSeconds      float64 `json:"write_timeout_seconds"`
	IdleTimeoutSeconds       float64 `json:"idle_timeout_seconds"`
	// PoolWindowSeconds is how long a write may wait in the write pool
	// for others to be committed with it (0: none).
	PoolWindowSeconds float64 `json:"pool_window_seconds"`
}

// ConfigTokens is the "tokens" member of /v1/config when writes are
// paid: where to get tokens and what they must be for.
type ConfigTokens struct {
	Issuer    string `json:"issuer"`    // the issuer's URL
	Challenge string `json:"challenge"` // the TokenChallenge, base64url with padding
	// BlocksPerToken is how many blocks one token pays for in one
	// request (write_batch).
	BlocksPerToken int              `json:"blocks_per_token"`
	Keys           []ConfigTokenKey `json:"token_keys"`
}

// ConfigTokenKey is a token key the server knows, newest first.
type ConfigTokenKey struct {
	TokenKey   string `json:"token_key"`    // SPKI, base64url with padding
	TokenKeyID string `json:"token_key_id"` // base64url without padding
	NotBefore  int64  `json:"not_before"`   // unix seconds; 0: none
	Accepted   bool   `json:"accepted"`     // tokens under it are redeemed now
}

// BatchManifest is the JSON part of a batch write (POST /v1/blocks).
type BatchManifest struct {
	Blocks []BatchEntry `json:"blocks"`
	// Atomic: the writes apply all together or none does, and the
	// deletions only with them.
	Atomic bool `json:"atomic,omitempty"`
}

// BatchEntry is one entry of a batch manifest: a write (its data follows
// the manifest), a deletion or a check.
type BatchEntry struct {
	ID         string `json:"id"`
	Proof      string `json:"proof"`                 // write proof, base64url
	CreateOnly bool   `json:"create_only,omitempty"` // as If-None-Match: *
	IfMatch    string `json:"if_match,omitempty"`    // as If-Match: a quoted strong ETag
	Delete     bool   `json:"delete,omitempty"`      // a deletion: no data in the body
	Check      bool   `json:"check,omitempty"`       // a check: no data in the body
}

// HasData reports whether the entry is a write, whose data the body
// carries.
func (e BatchEntry) HasData() bool { return !e.Delete && !e.Check }

// BatchResult is one block's outcome in the answer of POST /v1/blocks.
type BatchResult struct {
	ID     string `json:"id"`             // canonical lower-case form
	Status int    `json:"status"`         // 200 (check held), 201, 204, 403, 404 (deletion, check), 412 or 424 (atomic batch aborted)
	Code   string `json:"code,omitempty"` // for 403, 404, 412 and 424
	ETag   string `json:"etag,omitempty"` // after the write; for 412, the block's current one
}

// BatchResponse is the answer of POST /v1/blocks.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// ReadRequest is the body of POST /v1/read: the blocks to read, in the
// order of the answer's records (read.go).
type ReadRequest struct {
	IDs []string `json:"ids"`
}

// RenewRequest is the body of POST /v1/renew.
type RenewRequest struct {
	Blocks []RenewEntry `json:"blocks"`
}

// RenewEntry is one block of a renew request.
type RenewEntry struct {
	ID    string `json:"id"`
	Proof string `json:"proof"` // renew proof, base64url
}

// RenewResponse is the answer of POST /v1/renew. Missing and Refused
// list ids in canonical lower-case form; they go to the caller only.
type RenewResponse struct {
	Renewed int      `json:"renewed"` // moved to the current bucket
	Current int      `json:"current"` // already in it: nothing written
	Missing []string `json:"missing"` // no such block
	Refused []string `json:"refused"` // proof does not match
}
