package client

// The HTTP side of the client: docs/design.md §4 as seen from the user's
// machine. Remote speaks the v1 API and nothing else; it knows blocks,
// proofs and ETags, never files, keys or names.
//
// Errors carry a Kind (errors.go) mapped from the problem+json `code` by
// wire's code table (wire.LookupCode: its Client column), with these
// answers read the client's own way first:
//
//	precondition_failed               KindConflict (*PreconditionError, with the current ETag)
//	rate_limited (429)                retried after Retry-After, within MaxWait; then KindNetwork
//	unavailable (503), network errors retried with backoff, Retries times; then KindNetwork
//	not problem+json, or no code      KindNetwork (the server is not speaking the API)
//	token_spent, token_invalid (401)  retried with another token, twice; then KindQuota
//	token_required (401)              KindQuota (tokens.go)
//	a code the table does not know    KindOther
//
// Retrying is safe because every operation is idempotent: a create-only
// write that already landed answers 412 with our own ETag, and is taken
// as success; a delete that already happened answers 404.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/blindstore/blindstore/wire"
)

// ServerConfig is what GET /v1/config tells a client: wire's Config,
// whose token member is the client's TokenConfig (tokens.go).
type ServerConfig struct {
	wire.Config
	// Tokens is set when the server charges for writes (tokens.go). It
	// stands in for wire.Config's member of the same JSON name.
	Tokens *TokenConfig `json:"tokens,omitempty"`
}

func (c *ServerConfig) validate() error {
	switch {
	case wire.ValidateBlockSize(c.BlockSize) != nil:
		return fmt.Errorf("block_size %d is not a valid block size", c.BlockSize)
	case c.PeriodSeconds <= 0:
		return fmt.Errorf("period_seconds %d is not positive", c.PeriodSeconds)
	case c.RetentionPeriods < 2:
		return fmt.Errorf("retention_periods %d is below 2", c.RetentionPeriods)
	case c.Limits.RenewBatch <= 0 || c.Limits.WriteBatch <= 0:
		return errors.New("renew_batch and write_batch must be positive")
	}
	return nil
}

// Period returns the length of a period.
func (c *ServerConfig) Period() time.Duration { return time.Duration(c.PeriodSeconds) * time.Second }

// PeriodStart returns when period p begins.
func (c *ServerConfig) PeriodStart(p uint64) time.Time {
	return time.Unix(int64(p)*c.PeriodSeconds, 0)
}

// SafeUntil returns when blocks last renewed in period p are purged: at
// the start of period p+R, when p leaves the live set.
func (c *ServerConfig) SafeUntil(p uint64) time.Time {
	return c.PeriodStart(p + uint64(c.RetentionPeriods))
}

// Defaults of a Remote.
const (
	DefaultRetries  = 4
	DefaultMaxWait  = 30 * time.Second
	DefaultParallel = 8
	requestTimeout  = 2 * time.Minute
)

// Remote is a client of one blindstored server. It is safe for
// concurrent use.
type Remote struct {
	base *url.URL
	hc   *http.Client
	// Retries is how many times a request is repeated after a 503 or a
	// network error, with exponential backoff from Backoff.
	Retries int
	Backoff time.Duration
	// MaxWait bounds the time spent honouring Retry-After of 429s for
	// one request.
	MaxWait time.Duration
	// Parallel bounds concurrent block reads and batch writes.
	Parallel int
	// Tokens pays for writes at a server that charges (tokens.go).
	Tokens TokenSource

	cfgMu sync.Mutex
	cfg   *ServerConfig
}

// NewRemote returns a client of the server at baseURL (http or https,
// without /v1). hc may be nil for a client with sensible timeouts.
func NewRemote(baseURL string, hc *http.Client) (*Remote, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, errorf(KindInvalid, "server address %q is not an http:// or https:// URL", baseURL)
	}
	if hc == nil {
		hc = newHTTPClient(nil) // tls.go
	}
	return &Remote{base: u, hc: hc, Retries: DefaultRetries, Backoff: 100 * time.Millisecond, MaxWait: DefaultMaxWait, Parallel: DefaultParallel}, nil
}

// URL returns the server's base URL.
func (r *Remote) URL() string { return r.base.String() }

func (r *Remote) endpoint(path string) string { return r.base.String() + path }

// Config returns the server's /v1/config, read once per Remote.
func (r *Remote) Config(ctx context.Context) (*ServerConfig, error) {
	r.cfgMu.Lock()
	defer r.cfgMu.Unlock()
	if r.cfg != nil {
		return r.cfg, nil
	}
	var c ServerConfig
	err := r.do(ctx, "reading the server's configuration", func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, r.endpoint(wire.PathConfig), nil)
	}, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return unexpected(resp)
		}
		if err := decodeJSON(resp, 1<<20, &c); err != nil {
			return err
		}
		if err := c.validate(); err != nil {
			return errorf(KindNetwork, "the server's configuration is not usable: %v", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.cfg = &c
	return r.cfg, nil
}

// forgetConfig drops the cached configuration, so that the next request
// reads the server's token keys again.
func (r *Remote) forgetConfig() {
	r.cfgMu.Lock()
	r.cfg = nil
	r.cfgMu.Unlock()
}

// pay adds a token to a request the server charges for, when it does.
func (r *Remote) pay(ctx context.Context, req *http.Request, charged bool) error {
	if !charged {
		return nil
	}
	cfg, err := r.Config(ctx)
	if err != nil || cfg.Tokens == nil {
		return err
	}
	if r.Tokens == nil {
		return errNoTokens
	}
	tok, err := r.Tokens.Token(ctx, r.URL(), cfg)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", tok)
	return nil
}

// tokensLeft says how many write tokens this remote can still pay with
// at a server that charges (cfg.Tokens set), beside pay, which spends
// them: counted is false when its token source cannot count them.
func (r *Remote) tokensLeft(ctx context.Context, cfg *ServerConfig) (st TokenStatus, counted bool, err error) {
	if r.Tokens == nil {
		return st, false, errNoTokens
	}
	tc, ok := r.Tokens.(tokenCounter)
	if !ok {
		return st, false, nil
	}
	st, err = tc.Status(ctx, cfg)
	return st, err == nil, err
}

// CurrentPeriod asks the server for its current period now, without the
// cached configuration.
func (r *Remote) CurrentPeriod(ctx context.Context) (uint64, error) {
	var c ServerConfig
	err := r.do(ctx, "reading the server's period", func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, r.endpoint(wire.PathConfig), nil)
	}, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return unexpected(resp)
		}
		return decodeJSON(resp, 1<<20, &c)
	})
	return c.CurrentPeriod, err
}

// PreconditionError is a failed If-Match or If-None-Match. Current is the
// block's ETag when the server told it (only to the proof's holder).
type PreconditionError struct {
	Current *wire.ETag
}

func (e *PreconditionError) Error() string { return "the block changed (precondition failed)" }

// Get reads a block into dst (grown as needed) and returns the data and
// the ETag the server claims for it. The caller checks the ETag against
// the one it expects; Get checks only that the claim matches the data.
func (r *Remote) Get(ctx context.Context, id wire.ID, dst []byte) ([]byte, wire.ETag, error) {
	return r.get(ctx, id, dst, true)
}

// getUnhashed is Get without the ETag: it neither hashes the data nor
// checks the server's claim, and returns the zero ETag. It is for callers
// whose own checks of the content leave nothing for the ETag to catch
// (see openChunk); every byte of a file's blocks is hashed a pass less.
func (r *Remote) getUnhashed(ctx context.Context, id wire.ID, dst []byte) ([]byte, error) {
	data, _, err := r.get(ctx, id, dst, false)
	return data, err
}

func (r *Remote) get(ctx context.Context, id wire.ID, dst []byte, hash bool) ([]byte, wire.ETag, error) {
	cfg, err := r.Config(ctx)
	if err != nil {
		return nil, wire.ETag{}, err
	}
	var etag wire.ETag
	err = r.do(ctx, "reading a block", func() (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodGet, r.endpoint(wire.PathBlock+id.String()), nil)
	}, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return problemError(resp)
		}
		if resp.ContentLength >= 0 && resp.ContentLength != int64(cfg.BlockSize) {
			return errorf(KindTampered, "the server answered a block of %d bytes, not %d", resp.ContentLength, cfg.BlockSize)
		}
		if cap(dst) < cfg.BlockSize+1 {
			dst = make([]byte, cfg.BlockSize+1)
		}
		buf := dst[:cfg.BlockSize+1]
		n, err := io.ReadFull(resp.Body, buf)
		switch {
		case err == nil:
			return errorf(KindTampered, "the server answered a block longer than %d bytes", cfg.BlockSize)
		case n == cfg.BlockSize && (errors.Is(err, io.ErrUnexpectedEOF)):
		case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
			if resp.ContentLength < 0 {
				return errorf(KindTampered, "the server answered a block of %d bytes, not %d", n, cfg.BlockSize)
			}
			return transient(fmt.Errorf("reading a block: %w", err))
		default:
			return transient(fmt.Errorf("reading a block: %w", err))
		}
		dst = buf[:cfg.BlockSize]
		if !hash {
			return nil
		}
		etag = wire.ETagOf(dst)
		if h := resp.Header.Get("ETag"); h != "" {
			claimed, err := wire.ParseETag(h)
			if err != nil || claimed != etag {
				return errorf(KindTampered, "the server's ETag does not match the block it sent")
			}
		}
		return nil
	})
	if err != nil {
		return nil, wire.ETag{}, err
	}
	return dst, etag, nil
}

// Cond is a write precondition.
type Cond struct {
	CreateOnly bool       // If-None-Match: *
	IfMatch    *wire.ETag // If-Match: compare-and-swap
}

// Put writes one block and returns its ETag. A create-only write that
// finds the block already holding exactly data (a retry of a write that
// landed) succeeds.
func (r *Remote) Put(ctx context.Context, id wire.ID, w wire.WriteProof, data []byte, c Cond) (wire.ETag, error) {
	want := wire.ETagOf(data)
	err := r.do(ctx, "writing a block", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, r.endpoint(wire.PathBlock+id.String()), bytes.NewReader(data))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", wire.MediaBlock)
		req.Header.Set(wire.HeaderProof, wire.EncodeProof(w))
		if c.CreateOnly {
			req.Header.Set("If-None-Match", "*")
		}
		if c.IfMatch != nil {
			req.Header.Set("If-Match", c.IfMatch.String())
		}
		// A put that may create a block is paid; an overwrite is not.
		if err := r.pay(ctx, req, c.IfMatch == nil); err != nil {
			return nil, err
		}
		return req, nil
	}, func(resp *http.Response) error {
		switch resp.StatusCode {
		case http.StatusCreated, http.StatusNoContent:
			if got, err := wire.ParseETag(resp.Header.Get("ETag")); err != nil || got != want {
				return errorf(KindTampered, "the server acknowledged a write with an ETag that is not the data's")
			}
			return nil
		}
		err := problemError(resp)
		var pe *PreconditionError
		if errors.As(err, &pe) && pe.Current != nil && *pe.Current == want {
			return nil // our own write, landed by an earlier attempt
		}
		return err
	})
	return want, err
}

// Delete removes a block. A block already gone is not an error: every
// caller deletes what it no longer references, and a retry of a delete
// that landed finds nothing.
func (r *Remote) Delete(ctx context.Context, id wire.ID, w wire.WriteProof, ifMatch *wire.ETag) error {
	err := r.do(ctx, "deleting a block", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.endpoint(wire.PathBlock+id.String()), nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set(wire.HeaderProof, wire.EncodeProof(w))
		if ifMatch != nil {
			req.Header.Set("If-Match", ifMatch.String())
		}
		return req, nil
	}, func(resp *http.Response) error {
		if resp.StatusCode == http.StatusNoContent {
			return nil
		}
		return problemError(resp)
	})
	if KindOf(err) == KindNotFound {
		return nil
	}
	return err
}

// DeleteMany deletes blocks, each only while it has the ETag given (when
// one is), in non-atomic batches of the server's max_batch_refs, up to
// r.Parallel at once: one DELETE per block would wait the server's pool
// window each, a minute for a 256 MiB file's 4,096 blocks. As with
// Delete, a block already gone or changed is not an error (deleting is
// cleanup); the error is the first request that failed. A server without
// batch deletions gets one DELETE per block.
func (r *Remote) DeleteMany(ctx context.Context, items []CommitItem) error {
	cfg, err := r.Config(ctx)
	if err != nil {
		return err
	}
	if !cfg.CanCommit() {
		return parallel(ctx, len(items), r.Parallel, func(ctx context.Context, i int) error {
			return r.Delete(ctx, items[i].ID, items[i].Proof, items[i].Cond.IfMatch)
		})
	}
	var batches [][]CommitItem
	for rest := items; len(rest) > 0; {
		n := max(cfg.fitDeletions(nil, rest), 1)
		batches = append(batches, rest[:n])
		rest = rest[n:]
	}
	return parallel(ctx, len(batches), r.Parallel, func(ctx context.Context, i int) error {
		m := commitManifest(batches[i])
		m.Atomic = false
		return r.postBatch(ctx, "deleting blocks", m, nil, false, func([]wire.BatchResult) error { return nil })
	})
}

// BatchItem is one block of a batch write: always create-only, since the
// client writes every data and index block once under a fresh ID.
type BatchItem struct {
	ID    wire.ID
	Proof wire.WriteProof
	Data  []byte // exactly the block size
	// ETag, if not zero, is wire.ETagOf(Data), known already:
	// hashing every block again cost a fifth of a put's CPU.
	ETag wire.ETag
}

// etag returns the item's ETag, computing it if it was not given.
func (it *BatchItem) etag() wire.ETag {
	if it.ETag == (wire.ETag{}) {
		it.ETag = wire.ETagOf(it.Data)
	}
	return it.ETag
}

// PutBatch writes new blocks create-only in requests of at most the
// server's write_batch, and checks that each landed with the ETag of its
// data. It fails if any block could not be created.
func (r *Remote) PutBatch(ctx context.Context, items []BatchItem) error {
	cfg, err := r.Config(ctx)
	if err != nil {
		return err
	}
	for len(items) > 0 {
		n := min(len(items), cfg.Limits.WriteBatch)
		if err := r.putBatch(ctx, cfg, items[:n]); err != nil {
			return err
		}
		items = items[n:]
	}
	return nil
}

// postBatch sends one POST /v1/blocks, framed by wire: manifest m, then
// data in order, paid when pay (the batch may create blocks), and hands
// the results, checked for count, to results.
func (r *Remote) postBatch(ctx context.Context, what string, m *wire.BatchManifest, data [][]byte, pay bool, results func([]wire.BatchResult) error) error {
	body, err := wire.NewBatchBody(m, data)
	if err != nil {
		return fmt.Errorf("client: encoding a batch: %w", err)
	}
	n := len(m.Blocks)
	return r.do(ctx, what, func() (*http.Request, error) {
		req, err := body.NewRequest(ctx, r.base.String())
		if err != nil {
			return nil, err
		}
		if err := r.pay(ctx, req, pay); err != nil {
			return nil, err
		}
		return req, nil
	}, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return problemError(resp)
		}
		var out wire.BatchResponse
		if err := decodeJSON(resp, 1<<20, &out); err != nil {
			return err
		}
		if len(out.Results) != n {
			return errorf(KindNetwork, "the server answered %d results for a batch of %d entries", len(out.Results), n)
		}
		return results(out.Results)
	})
}

func (r *Remote) putBatch(ctx context.Context, cfg *ServerConfig, items []BatchItem) error {
	m := &wire.BatchManifest{Blocks: make([]wire.BatchEntry, len(items))}
	want := make([]wire.ETag, len(items))
	data := make([][]byte, len(items))
	for i, it := range items {
		if len(it.Data) != cfg.BlockSize {
			return fmt.Errorf("client: batch block of %d bytes, want %d", len(it.Data), cfg.BlockSize)
		}
		m.Blocks[i] = wire.BatchEntry{ID: it.ID.String(), Proof: wire.EncodeProof(it.Proof), CreateOnly: true}
		want[i], data[i] = items[i].etag(), it.Data
	}
	return r.postBatch(ctx, "writing blocks", m, data, true, func(rs []wire.BatchResult) error {
		for i, res := range rs {
			if res.ID != m.Blocks[i].ID {
				return errorf(KindNetwork, "the server answered a batch's results out of order")
			}
			etag, perr := wire.ParseETag(res.ETag)
			switch {
			case (res.Status == http.StatusCreated || res.Status == http.StatusNoContent) && perr == nil && etag == want[i]:
			case res.Status == http.StatusPreconditionFailed && perr == nil && etag == want[i]:
				// Landed by an earlier attempt of this request.
			case res.Status == http.StatusCreated || res.Status == http.StatusNoContent:
				return errorf(KindTampered, "the server acknowledged a write with an ETag that is not the data's")
			case res.Status == http.StatusPreconditionFailed:
				return &Error{Kind: KindConflict, Msg: "a new block's random id is taken", Err: &PreconditionError{}}
			case res.Status == http.StatusForbidden:
				return errorf(KindAuth, "the server refused a block's write proof")
			default:
				return errorf(KindNetwork, "the server answered status %d for a block of a batch", res.Status)
			}
		}
		return nil
	})
}

// CommitItem is one entry of an atomic batch (Remote.Commit): a write
// when Data is set, else a check (Check) or a deletion.
type CommitItem struct {
	ID    wire.ID
	Proof wire.WriteProof
	Data  []byte // nil: delete or check the block
	Check bool   // with no Data: the batch holds only if the block exists, is ours and meets Cond
	Cond  Cond   // a deletion or check takes IfMatch only
	// ETag, if not zero, is wire.ETagOf(Data), known already.
	ETag wire.ETag
}

// errUnacked: a commit that checks blocks still on their way found one
// missing (or the server cannot check). Nothing of the commit applied;
// the caller waits for those writes and commits again.
var errUnacked = &Error{Kind: KindConflict, Msg: "blocks the commit refers to are not all written yet"}

// CanCommit reports whether the server takes atomic batches, and so
// whether Commit may be used.
func (cfg *ServerConfig) CanCommit() bool { return cfg.Limits.MaxBatchRefs > 0 }

// commitsBeside reports whether a commit should check blocks whose writes
// are still on their way rather than wait for them (Put): only where the
// write pool has a window to share (without one the writes are answered
// at once, and a commit sent beside them would often come first) and
// writes are not paid (a commit whose check fails has spent its token).
func (cfg *ServerConfig) commitsBeside() bool {
	return cfg.CanCommit() && cfg.Tokens == nil && cfg.Limits.PoolWindowSeconds > 0
}

// commitFits reports whether items fit one atomic batch of the server.
func (cfg *ServerConfig) commitFits(items []CommitItem) bool {
	if !cfg.CanCommit() {
		return false
	}
	writes := 0
	for _, it := range items {
		if it.Data != nil {
			writes++
		}
	}
	if writes > cfg.Limits.WriteBatch || len(items)-writes > cfg.Limits.MaxBatchRefs {
		return false
	}
	if cfg.Limits.MaxManifestBytes > 0 {
		if m, err := json.Marshal(commitManifest(items)); err != nil || len(m) > cfg.Limits.MaxManifestBytes {
			return false
		}
	}
	return true
}

// fitDeletions returns how many of dels, taken in order, fit one atomic
// batch beside items (which fit).
func (cfg *ServerConfig) fitDeletions(items, dels []CommitItem) int {
	room := cfg.Limits.MaxBatchRefs
	for _, it := range items {
		if it.Data == nil {
			room--
		}
	}
	n := min(max(room, 0), len(dels))
	if cfg.Limits.MaxManifestBytes <= 0 || n == 0 {
		return n
	}
	base, err := json.Marshal(commitManifest(items))
	if err != nil {
		return 0
	}
	size := len(base)
	for i, e := range commitManifest(dels[:n]).Blocks {
		b, err := json.Marshal(e)
		if err != nil {
			return i
		}
		if size += len(b) + 1; size > cfg.Limits.MaxManifestBytes { // and a comma
			return i
		}
	}
	return n
}

func commitManifest(items []CommitItem) *wire.BatchManifest {
	m := &wire.BatchManifest{Atomic: true, Blocks: make([]wire.BatchEntry, len(items))}
	for i, it := range items {
		e := wire.BatchEntry{ID: it.ID.String(), Proof: wire.EncodeProof(it.Proof), CreateOnly: it.Cond.CreateOnly, Delete: it.Data == nil && !it.Check, Check: it.Check}
		if it.Cond.IfMatch != nil {
			e.IfMatch = it.Cond.IfMatch.String()
		}
		m.Blocks[i] = e
	}
	return m
}

// Commit sends items as one atomic batch: its writes apply all together
// or none does, and its deletions only with them, in one commit of the
// server. It returns nil once the writes applied (by this call or by an
// earlier attempt of it), and an error wrapping *PreconditionError with
// the block's current ETag when a compare-and-swap lost: nothing of the
// batch was applied then. A deletion's failure is not an error (deleting
// is cleanup; a block already gone is deleted). The caller checks
// CanCommit and that the batch fits the server's limits.
func (r *Remote) Commit(ctx context.Context, items []CommitItem) error {
	cfg, err := r.Config(ctx)
	if err != nil {
		return err
	}
	m := commitManifest(items)
	want := make([]wire.ETag, len(items))
	var data [][]byte
	creates := false
	for i, it := range items {
		if it.Data == nil {
			continue
		}
		if len(it.Data) != cfg.BlockSize {
			return fmt.Errorf("client: batch block of %d bytes, want %d", len(it.Data), cfg.BlockSize)
		}
		if want[i] = it.ETag; want[i] == (wire.ETag{}) {
			want[i] = wire.ETagOf(it.Data)
		}
		data = append(data, it.Data)
		creates = creates || it.Cond.IfMatch == nil
	}
	return r.postBatch(ctx, "committing", m, data, creates, func(rs []wire.BatchResult) error {
		return commitOutcome(items, m, want, rs)
	})
}

// commitOutcome reads an atomic batch's results. The batch applied
// whole, or nothing of it did; a write that answers 412 with the ETag
// of its own data tells that an earlier attempt of this very request
// applied (a new block's random id exists nowhere else, and the batch
// applies whole or not at all), so that is success too.
func commitOutcome(items []CommitItem, m *wire.BatchManifest, want []wire.ETag, results []wire.BatchResult) error {
	var failed error
	applied, landedBefore, unacked := true, false, false
	for i, res := range results {
		if res.ID != m.Blocks[i].ID {
			return errorf(KindNetwork, "the server answered a batch's results out of order")
		}
		if items[i].Check {
			switch res.Status {
			case http.StatusOK:
			case http.StatusFailedDependency:
				applied = false
			case http.StatusNotFound, http.StatusPreconditionFailed, http.StatusForbidden:
				applied, unacked = false, true
			default:
				return errorf(KindNetwork, "the server answered status %d for a check of a batch", res.Status)
			}
			continue
		}
		if items[i].Data == nil {
			continue // a deletion: cleanup, whatever its outcome
		}
		etag, perr := wire.ParseETag(res.ETag)
		switch res.Status {
		case http.StatusCreated, http.StatusNoContent:
			if perr != nil || etag != want[i] {
				return errorf(KindTampered, "the server acknowledged a write with an ETag that is not the data's")
			}
		case http.StatusFailedDependency:
			applied = false
		case http.StatusPreconditionFailed:
			applied = false
			switch {
			case perr == nil && etag == want[i]:
				landedBefore = true
			case items[i].Cond.CreateOnly:
				failed = &Error{Kind: KindConflict, Msg: "a new block's random id is taken", Err: &PreconditionError{}}
			default:
				pe := &PreconditionError{}
				if perr == nil {
					pe.Current = &etag
				}
				failed = &Error{Kind: KindConflict, Msg: "the block changed meanwhile", Err: pe}
			}
		case http.StatusForbidden:
			return errorf(KindAuth, "the server refused a block's write proof")
		default:
			return errorf(KindNetwork, "the server answered status %d for a block of a batch", res.Status)
		}
	}
	switch {
	case applied, landedBefore:
		return nil
	case failed != nil:
		return failed
	case unacked:
		return errUnacked
	}
	return errorf(KindNetwork, "the server aborted an atomic batch without saying which entry failed")
}

// RenewItem is one block to renew.
type RenewItem struct {
	ID    wire.ID
	Proof wire.RenewProof
}

// RenewResult sums up renewals.
type RenewResult struct {
	Renewed int       // moved to the current period
	Current int       // already in it
	Missing []wire.ID // gone: purged or deleted
	Refused []wire.ID // proof refused
}

// Renew renews blocks in batches of at most the server's renew_batch,
// up to r.Parallel at once: each request waits for the server's pool
// window, so a large account's batches one after the other would cost a
// window each. The caller shuffles: a batch's grouping is visible to the
// server.
func (r *Remote) Renew(ctx context.Context, items []RenewItem) (RenewResult, error) {
	cfg, err := r.Config(ctx)
	if err != nil {
		return RenewResult{}, err
	}
	size := cfg.Limits.RenewBatch
	results := make([]RenewResult, (len(items)+size-1)/size)
	err = parallel(ctx, len(results), r.Parallel, func(ctx context.Context, i int) error {
		var err error
		results[i], err = r.renew(ctx, items[i*size:min(len(items), (i+1)*size)])
		return err
	})
	var total RenewResult
	for _, res := range results {
		total.Renewed += res.Renewed
		total.Current += res.Current
		total.Missing = append(total.Missing, res.Missing...)
		total.Refused = append(total.Refused, res.Refused...)
	}
	return total, err
}

func (r *Remote) renew(ctx context.Context, items []RenewItem) (RenewResult, error) {
	body := wire.RenewRequest{Blocks: make([]wire.RenewEntry, len(items))}
	for i, it := range items {
		body.Blocks[i] = wire.RenewEntry{ID: it.ID.String(), Proof: wire.EncodeProof(it.Proof)}
	}
	raw, err := json.Marshal(body)
	if err != nil {
		return RenewResult{}, fmt.Errorf("client: encoding a renewal: %w", err)
	}
	var res RenewResult
	err = r.do(ctx, "renewing blocks", func() (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint(wire.PathRenew), bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", wire.MediaJSON)
		if err := r.pay(ctx, req, true); err != nil {
			return nil, err
		}
		return req, nil
	}, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return problemError(resp)
		}
		var out wire.RenewResponse
		if err := decodeJSON(resp, 4<<20, &out); err != nil {
			return err
		}
		if out.Renewed+out.Current+len(out.Missing)+len(out.Refused) != len(items) {
			return errorf(KindNetwork, "the server's renewal counts do not add up to the blocks sent")
		}
		res = RenewResult{Renewed: out.Renewed, Current: out.Current}
		for _, s := range out.Missing {
			id, err := wire.ParseID(s)
			if err != nil {
				return errorf(KindNetwork, "the server named a malformed block id")
			}
			res.Missing = append(res.Missing, id)
		}
		for _, s := range out.Refused {
			id, err := wire.ParseID(s)
			if err != nil {
				return errorf(KindNetwork, "the server named a malformed block id")
			}
			res.Refused = append(res.Refused, id)
		}
		return nil
	})
	return res, err
}

// transientError marks a failure worth retrying: a 503, a broken
// connection.
type transientError struct {
	err        error
	retryAfter time.Duration
}

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

func transient(err error) error { return &transientError{err: err} }

// rateLimitedError is a 429.
type rateLimitedError struct{ retryAfter time.Duration }

func (e *rateLimitedError) Error() string {
	return "the server is rate limiting this address (too many failed requests)"
}

// do sends the request build makes and hands the response to handle,
// retrying transient failures and 429s within the Remote's bounds.
func (r *Remote) do(ctx context.Context, what string, build func() (*http.Request, error), handle func(*http.Response) error) error {
	waited := time.Duration(0)
	tokenTries := 0
	for attempt := 0; ; attempt++ {
		err := r.once(build, handle)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return wrap(KindNetwork, what, ctx.Err())
		}
		var te *transientError
		var rl *rateLimitedError
		var tr *tokenRejectedError
		var wait time.Duration
		switch {
		case errors.As(err, &tr):
			// Spent (a race with another process) or no longer good
			// here (its key rotated out): read the keys again and try
			// another token, a couple of times.
			r.forgetConfig()
			if tokenTries++; tokenTries > 2 {
				return &Error{Kind: KindQuota, Msg: what + ": the server refused our tokens", Err: err}
			}
			continue
		case errors.As(err, &rl):
			wait = max(rl.retryAfter, time.Second)
			if waited+wait > r.MaxWait {
				return wrap(KindNetwork, what, err)
			}
			waited += wait
		case errors.As(err, &te):
			if attempt >= r.Retries {
				return wrap(KindNetwork, what, te.err)
			}
			wait = r.Backoff << attempt
			wait = wait/2 + rand.N(wait/2+1) // jitter: clients that failed together retry apart
			if te.retryAfter > 0 {
				wait = min(max(wait, te.retryAfter), 10*time.Second)
			}
		default:
			return wrap(KindOther, what, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return wrap(KindNetwork, what, ctx.Err())
		case <-t.C:
		}
	}
}

func (r *Remote) once(build func() (*http.Request, error), handle func(*http.Response) error) error {
	req, err := build()
	if err != nil {
		if KindOf(err) != KindOther {
			return err // a token could not be had: the message says why
		}
		return fmt.Errorf("client: building a request: %w", err)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		if req.Context().Err() != nil {
			return req.Context().Err()
		}
		if ce := certificateError(err); ce != nil {
			return ce
		}
		return transient(fmt.Errorf("cannot reach the server at %s: %w", r.base.Host, stripURL(err)))
	}
	defer func() {
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
		resp.Body.Close()
	}()
	return handle(resp)
}

// stripURL drops the request URL from a *url.Error: it holds a block ID.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// problemError turns a non-success answer into an error of its kind.
func problemError(resp *http.Response) error {
	var p wire.Problem
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt == wire.MediaProblem {
		_ = json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p)
	}
	switch resp.StatusCode {
	case http.StatusTooManyRequests:
		return &rateLimitedError{retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return &transientError{err: fmt.Errorf("the server is unavailable (%d)", resp.StatusCode), retryAfter: parseRetryAfter(resp.Header.Get("Retry-After"))}
	}
	if mt != wire.MediaProblem || p.Code == "" {
		return errorf(KindNetwork, "the server answered %s, which is not the blindstore API", statusText(resp.StatusCode))
	}
	switch p.Code {
	case wire.CodePreconditionFailed:
		pe := &PreconditionError{}
		if e, err := wire.ParseETag(resp.Header.Get("ETag")); err == nil {
			pe.Current = &e
		}
		return &Error{Kind: KindConflict, Err: pe}
	case wire.CodeTokenSpent, wire.CodeTokenInvalid:
		return &tokenRejectedError{code: p.Code}
	case wire.CodeTokenRequired:
		return errNoTokens
	}
	if pc, ok := wire.LookupCode(p.Code); ok && pc.Client != KindOther {
		return &Error{Kind: pc.Client, Msg: problemText(pc.Code)}
	}
	return errorf(KindOther, "the server refused the request: %s (%s)", serverText(p.Code, 64), serverText(p.Detail, 200))
}

// problemText is what the user is told of a problem the client has a
// kind for; the server's detail is not needed to say it.
func problemText(code string) string {
	switch code {
	case wire.CodeNotFound:
		return "no such block"
	case wire.CodeProofMismatch:
		return "the server refused the block's write proof"
	case wire.CodeFull:
		return "the server's store is full"
	}
	return "the server refused the request: " + code
}

// serverText makes text a server chose fit to show the user: control and
// format characters (bidi overrides) and invalid UTF-8 become '?', and it
// is cut to max runes. A hostile server could otherwise write escape
// sequences to the user's terminal, or pages of text into one error line.
func serverText(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}

// statusText names a status by its code and standard text, never by the
// reason phrase the server sent, which is the server's to choose.
func statusText(code int) string {
	return strconv.Itoa(code) + " " + http.StatusText(code)
}

func unexpected(resp *http.Response) error {
	if err := problemError(resp); err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.Kind == KindOther {
			return errorf(KindNetwork, "the server answered %s, which is not the blindstore API", statusText(resp.StatusCode))
		}
		return err
	}
	return nil
}

func parseRetryAfter(s string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// decodeJSON decodes a JSON answer of at most limit bytes.
func decodeJSON(resp *http.Response, limit int64, v any) error {
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mt != wire.MediaJSON {
		return errorf(KindNetwork, "the server answered %q where JSON was expected: it is not a blindstore server", serverText(resp.Header.Get("Content-Type"), 64))
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, limit)).Decode(v); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		if errors.As(err, &se) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return errorf(KindNetwork, "the server's answer is not valid JSON: it is not a blindstore server, or the connection broke")
		}
		return transient(fmt.Errorf("reading the server's answer: %w", err))
	}
	return nil
}
