package pool

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/redis/go-redis/v9"
)

// errLostLock ends a flusher's turn: the lock, or the fence, is another's.
var errLostLock = errors.New("pool: this instance no longer holds the flusher's lock")

// errStoreDown marks a flush that failed because the store could not
// commit, as opposed to Redis failing.
type errStoreDown struct{ err error }

func (e errStoreDown) Error() string { return "pool: store unavailable: " + e.err.Error() }
func (e errStoreDown) Unwrap() error { return e.err }

// flushLoop competes for the flusher's lock and flushes while it holds it.
func (p *RedisPool) flushLoop() {
	defer close(p.flusherDone)
	poll := min(p.opt.LockTTL/3, time.Second)
	for !p.stopping() {
		token := [16]byte(random16())
		ok, err := p.rc.SetNX(p.ctx, p.keys.lock, hex.EncodeToString(token[:]), p.opt.LockTTL).Result()
		if err == nil && ok {
			p.lead(token)
			continue
		}
		p.pause(poll)
	}
}

func (p *RedisPool) stopping() bool {
	select {
	case <-p.stop:
		return true
	case <-p.ctx.Done():
		return true
	default:
		return false
	}
}

// pause sleeps d or until the pool stops.
func (p *RedisPool) pause(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-p.stop:
	case <-p.ctx.Done():
	}
}

// lead is one turn as the flusher: fence the store, then take and commit
// batches until the lock is lost or the pool stops.
func (p *RedisPool) lead(token [16]byte) {
	tok := hex.EncodeToString(token[:])
	lctx, lose := context.WithCancel(p.ctx)
	var renewing sync.WaitGroup
	if !p.hooks.noRenew {
		renewing.Add(1)
		go func() {
			defer renewing.Done()
			p.keepLock(lctx, tok, lose)
		}()
	}
	down := false
	defer func() {
		lose()
		renewing.Wait()
		if p.killed.Load() {
			return // leave everything as a dead process would
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if down {
			p.rc.Del(ctx, p.keys.down)
		}
		// Hand over at once rather than after the lock's TTL.
		releaseScript.Run(ctx, p.rc, []string{p.keys.lock}, tok)
	}()

	bo := newBackoff()
	var last [16]byte
	for {
		l, err := p.store.Fence(lctx, token)
		if err == nil {
			last = l
			break
		}
		if lctx.Err() != nil || p.stopping() {
			return
		}
		if !down {
			p.log.Warn("write pool: cannot take the store's fence; writes get 503 until it answers", "err", err)
		}
		down = p.setDown(lctx)
		bo.sleep(lctx)
	}
	p.log.Info("write pool: this instance commits the shared pool's batches")
	p.leading.Store(true)
	defer p.leading.Store(false)

	var since time.Time
	for lctx.Err() == nil && !p.stopping() {
		if !p.waitDue(lctx, &since) {
			continue
		}
		start := time.Now()
		committed, err := p.flushOne(lctx, token, tok, &last)
		var sd errStoreDown
		switch {
		case errors.Is(err, errLostLock):
			p.log.Info("write pool: another instance took over committing")
			return
		case errors.As(err, &sd):
			if !down {
				p.log.Warn("write pool: store unavailable; the batch is kept and retried, writes get 503 meanwhile", "err", sd.err)
			}
			down = p.setDown(lctx)
			bo.sleep(lctx)
			continue
		case err != nil:
			if lctx.Err() == nil {
				p.log.Warn("write pool: Redis failed while flushing; retrying", "err", err)
			}
			bo.sleep(lctx)
			continue
		}
		bo.reset()
		if down {
			p.rc.Del(lctx, p.keys.down)
			down = false
			p.log.Info("write pool: store available again")
		}
		if committed {
			// Requests that came during this commit have waited since
			// its start at most.
			since = start
		}
	}
}

// setDown tells every instance that the store refuses commits, so that
// new requests get 503 at once instead of waiting; the flag lapses by
// itself if this flusher dies.
func (p *RedisPool) setDown(ctx context.Context) bool {
	return p.rc.Set(ctx, p.keys.down, "1", 3*time.Second).Err() == nil
}

// keepLock renews the lock every third of its TTL, and ends the turn
// (lose) when another holds it or when it could not be renewed for so
// long that it may have lapsed.
func (p *RedisPool) keepLock(ctx context.Context, tok string, lose context.CancelFunc) {
	every := p.opt.LockTTL / 3
	t := time.NewTicker(every)
	defer t.Stop()
	confirmed := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rctx, cancel := context.WithTimeout(ctx, every)
		n, err := renewScript.Run(rctx, p.rc, []string{p.keys.lock}, tok, p.opt.LockTTL.Milliseconds()).Int64()
		cancel()
		switch {
		case err == nil && n == 1:
			confirmed = time.Now()
		case err == nil:
			lose()
			return
		case time.Since(confirmed) >= p.opt.LockTTL-every:
			p.log.Warn("write pool: cannot renew the flusher's lock; stepping down", "err", err)
			lose()
			return
		}
	}
}

// waitDue reports whether a batch is due now: one is in processing, the
// oldest waiting request (as far as the flusher can tell: Redis keeps no
// times) has waited the window, or the waiting ops or bytes reach a cap.
// Otherwise it waits for the bell, at most until the window ends, and
// reports false.
func (p *RedisPool) waitDue(ctx context.Context, since *time.Time) bool {
	k := p.keys
	idle := min(time.Second, p.opt.LockTTL/3)
	var llen, inProc *redis.IntCmd
	var qops, qbytes *redis.StringCmd
	_, err := p.rc.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		llen = pipe.LLen(ctx, k.queue)
		inProc = pipe.Exists(ctx, k.batch)
		qops = pipe.Get(ctx, k.qops)
		qbytes = pipe.Get(ctx, k.qbytes)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		p.pause(100 * time.Millisecond)
		return false
	}
	if inProc.Val() == 1 {
		return true
	}
	if llen.Val() == 0 {
		*since = time.Time{}
		p.ring(ctx, idle)
		return false
	}
	if since.IsZero() {
		*since = time.Now()
	}
	rem := time.Until(since.Add(p.opt.Window))
	ops, _ := strconv.Atoi(qops.Val())
	bytes, _ := strconv.Atoi(qbytes.Val())
	if rem <= 0 || ops >= p.opt.FullOps || bytes >= p.opt.FullBytes || p.opt.quorate(int(llen.Val())) {
		return true
	}
	p.ring(ctx, min(rem, idle))
	return false
}

// ring waits up to d for the bell. go-redis's BLPop rounds timeouts to
// whole seconds, so the command is sent as is, with milliseconds.
func (p *RedisPool) ring(ctx context.Context, d time.Duration) {
	secs := strconv.FormatFloat(max(d.Seconds(), 0.001), 'f', 3, 64)
	err := p.rc.Do(ctx, "blpop", p.keys.bell, secs).Err()
	if err != nil && !errors.Is(err, redis.Nil) && ctx.Err() == nil {
		p.pause(100 * time.Millisecond)
	}
}

// batchReq is one request of a batch.
type batchReq struct {
	rid   []byte // raw
	inst  string
	entry string
	ops   []blobstore.Op
}

// parseEntry reads a queue entry "rid nops nbytes instance".
func parseEntry(e string) (rid []byte, inst string, err error) {
	f := strings.Fields(e)
	if len(f) != 4 {
		return nil, "", errMalformed
	}
	rid, err = hex.DecodeString(f[0])
	if err != nil || len(rid) != 16 {
		return nil, "", errMalformed
	}
	return rid, f[3], nil
}

func parseBatch(v string) (id, prev [16]byte, err error) {
	f := strings.Fields(v)
	if len(f) != 2 {
		return id, prev, errMalformed
	}
	a, err1 := hex.DecodeString(f[0])
	b, err2 := hex.DecodeString(f[1])
	if err1 != nil || err2 != nil || len(a) != 16 || len(b) != 16 {
		return id, prev, errMalformed
	}
	return [16]byte(a), [16]byte(b), nil
}

// flushOne takes a batch (the one in processing, or a new one), commits
// it, and answers its requests. It reports whether it finished a batch.
func (p *RedisPool) flushOne(lctx context.Context, token [16]byte, tok string, last *[16]byte) (bool, error) {
	k := p.keys
	next := [16]byte(random16())
	v, err := takeScript.Run(lctx, p.rc, []string{k.lock, k.queue, k.qops, k.qbytes, k.proc, k.batch},
		tok, hex.EncodeToString(next[:])+" "+hex.EncodeToString(last[:]), p.opt.MaxOps, p.opt.MaxBytes).Slice()
	if err != nil {
		return false, fmt.Errorf("pool: take a batch: %w", err)
	}
	switch code, _ := v[0].(int64); code {
	case 0:
		return false, errLostLock
	case 2:
		return false, nil
	}
	if len(v) != 3 {
		return false, fmt.Errorf("pool: take a batch: %w", errMalformed)
	}
	val, _ := v[1].(string)
	items, _ := v[2].([]any)
	id, prev, perr := parseBatch(val)

	var reqs []batchReq
	var bad []batchReq // answered 503 without being committed
	payloadKeys := make([]string, 0, len(items))
	for _, it := range items {
		e, _ := it.(string)
		rid, inst, err := parseEntry(e)
		if err != nil {
			continue
		}
		q := batchReq{rid: rid, inst: inst, entry: e}
		payloadKeys = append(payloadKeys, k.payload(hex.EncodeToString(rid)))
		reqs = append(reqs, q)
	}
	if len(payloadKeys) > 0 {
		vals, err := p.rc.MGet(lctx, payloadKeys...).Result()
		if err != nil {
			return false, fmt.Errorf("pool: read a batch's requests: %w", err)
		}
		good := reqs[:0]
		for i, q := range reqs {
			s, _ := vals[i].(string)
			ops, err := decodeOps([]byte(s))
			if err != nil {
				bad = append(bad, q)
				continue
			}
			q.ops = ops
			good = append(good, q)
		}
		reqs = good
	}
	if perr != nil || len(reqs) == 0 {
		// Nothing that can be committed: answer and drop.
		all := append(reqs, bad...)
		answers := make([][]byte, len(all))
		for i, q := range all {
			answers[i] = encodeUnknown(q.rid)
		}
		p.log.Warn("write pool: dropped a batch that cannot be committed", "requests", len(all))
		return true, p.finish(lctx, tok, val, payloadKeys, all, answers, true)
	}

	if h := p.hooks.beforeCommit; h != nil {
		h(lctx)
		if p.killed.Load() {
			return false, errLostLock
		}
	}
	rng, err := newRand()
	if err != nil {
		return false, err
	}
	perReq := make([][]blobstore.Op, len(reqs))
	for i := range reqs {
		perReq[i] = reqs[i].ops
	}
	ops, at := permute(rng, perReq)
	cctx, cancel := context.WithTimeout(lctx, p.opt.CommitTimeout)
	rs, err := p.store.ApplyFenced(cctx, token, prev, id, ops)
	cancel()
	if err == nil && len(rs) != len(ops) {
		err = fmt.Errorf("pool: the store returned %d results for %d ops", len(rs), len(ops))
	}

	answers := make([][]byte, 0, len(reqs)+len(bad))
	all := append(append([]batchReq(nil), reqs...), bad...)
	var (
		fenced interface{ Fenced() bool }
		done   interface{ BatchCommitted() bool }
	)
	switch {
	case err == nil:
		if h := p.hooks.afterCommit; h != nil {
			h(lctx)
			if p.killed.Load() {
				return false, errLostLock
			}
		}
		for i, q := range reqs {
			r := make([]blobstore.Result, len(at[i]))
			for j, pos := range at[i] {
				r[j] = rs[pos]
			}
			answers = append(answers, encodeResults(q.rid, r))
		}
		*last = id
	case errors.As(err, &done) && done.BatchCommitted():
		// Committed by a flusher that died before answering: the
		// results are lost, the writes are not.
		for _, q := range reqs {
			answers = append(answers, encodeUnknown(q.rid))
		}
		*last = id
	case errors.As(err, &fenced) && fenced.Fenced():
		return false, errLostLock
	case isUnavailable(err):
		// Outcome unknown: keep the batch, to be tried again before
		// anything else, and answer its requests 503 now.
		for _, q := range all {
			answers = append(answers, encodeUnknown(q.rid))
		}
		if ferr := p.finish(lctx, tok, val, payloadKeys, all, answers, false); errors.Is(ferr, errLostLock) {
			return false, ferr
		}
		return false, errStoreDown{err}
	default:
		// Refused, nothing committed (a stale replay, a full disk).
		p.log.Warn("write pool: the store refused a batch; its requests get the error", "err", err)
		for _, q := range reqs {
			answers = append(answers, encodeError(q.rid, err))
		}
	}
	for _, q := range bad {
		answers = append(answers, encodeUnknown(q.rid))
	}
	return true, p.finish(lctx, tok, val, payloadKeys, all, answers, true)
}

// finish pushes each request's answer to its instance and, with del,
// removes the batch and its payloads, all under the lock.
func (p *RedisPool) finish(ctx context.Context, tok, batchVal string, payloadKeys []string, reqs []batchReq, answers [][]byte, del bool) error {
	if p.killed.Load() {
		return errLostLock // a dead process answers nothing
	}
	k := p.keys
	keys := make([]string, 0, 3+len(payloadKeys)+len(reqs))
	keys = append(keys, k.lock, k.proc, k.batch)
	keys = append(keys, payloadKeys...)
	args := make([]any, 0, 4+len(answers))
	d := "0"
	if del {
		d = "1"
	}
	args = append(args, tok, batchVal, len(payloadKeys), d)
	for i, q := range reqs {
		keys = append(keys, k.answers(q.inst))
		args = append(args, answers[i])
	}
	// The commit is done: finishing must not be cut short by the turn
	// ending, only by the lock being another's.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	n, err := finishScript.Run(fctx, p.rc, keys, args...).Int64()
	switch {
	case err != nil:
		return fmt.Errorf("pool: answer a batch: %w", err)
	case n == 0:
		return errLostLock
	case n < 0:
		return fmt.Errorf("pool: the batch in processing is not the one committed")
	}
	return nil
}
