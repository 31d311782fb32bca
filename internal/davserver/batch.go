package davserver

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
)

// smallPut is the largest PUT held in memory and committed in a batch:
// four blocks' worth, as client.PutMany sends small files beside others.
const smallPut = 256 << 10

// maxBatch bounds the files of one batch, as blind put bounds its own.
const maxBatch = 4096

// maxJournal is the journal's size beyond which it is rewritten with
// only the files not yet committed, for a server never idle long enough
// for it to be emptied.
const maxJournal = 4 * maxHeld

// maxHeld bounds the data of journaled files not yet committed: a PUT
// beyond it waits for a commit, so that memory stays bounded whatever
// the clients send.
const maxHeld = 64 << 20

// batcher commits small files in groups (client.PutMany: one index
// update for all of them): a batch holds whatever arrived while the one
// before it was being committed.
//
// Without a journal, each PUT is answered once its file is committed,
// so a batch is at most the PUTs in flight, and each costs a write
// window of the server: small files go at the client's parallelism per
// window. With one, a PUT is answered once its file is synced to the
// journal, and batches grow with whatever arrives meanwhile.
type batcher struct {
	acc Account
	j   *journal // nil: each put waits for its commit
	// committed is told each journaled file once it is in the account
	// (f with no Name: another device's version kept the name, ours
	// went under a conflict name); newest says no later version of the
	// name is waiting. It runs with no lock of the batcher held.
	committed func(p *pending, f indexfile.File, newest bool)

	mu       sync.Mutex
	cond     *sync.Cond // a commit ended
	queue    []*pending
	busy     bool              // a goroutine is committing
	inflight map[string]uint64 // name → sequence of the batch being committed
	latest   map[string]*pending
	held     int64  // bytes of journaled files not committed
	seq      uint64 // the last sequence number given
	refused  bool   // a journaled file the account refused stays in the journal
	compact  int64  // maxJournal, but for tests
}

type pending struct {
	seq       uint64
	name      string
	data      []byte
	info      client.PutInfo
	journaled bool // answered already; nobody waits on done
	file      indexfile.File
	err       error
	done      chan struct{}
}

func newBatcher(acc Account, j *journal) *batcher {
	b := &batcher{acc: acc, j: j, inflight: map[string]uint64{}, latest: map[string]*pending{}, compact: maxJournal}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// put commits the file, with whatever others are waiting, and returns
// its index entry.
func (b *batcher) put(info client.PutInfo, data []byte) (indexfile.File, error) {
	p := &pending{name: info.Name, data: data, info: info, done: make(chan struct{})}
	b.mu.Lock()
	b.seq++
	p.seq = b.seq
	b.queue = append(b.queue, p)
	b.kick()
	b.mu.Unlock()
	<-p.done
	return p.file, p.err
}

// journal makes the file durable in the journal and queues it for the
// next batch; it returns once the journal is synced, before the commit.
// Reads see the file at once (lookup); queued is called once it is
// queued, before the sync, so that a client that goes on without
// waiting for this answer (a MKCOL's 423 taken as done) finds it.
func (b *batcher) journal(info client.PutInfo, data []byte, queued func()) error {
	b.mu.Lock()
	for b.held > maxHeld {
		b.cond.Wait()
	}
	p := b.enqueue(journalEntry{name: info.Name, mode: info.Mode, mtime: info.ModTime, data: data})
	// Written under mu, so that the journal's order is the queue's.
	off := b.j.put(journalEntry{seq: p.seq, name: p.name, mode: info.Mode, mtime: info.ModTime, data: data})
	b.mu.Unlock()
	queued()
	return b.j.sync(off)
}

// enqueue queues a journaled file; b.mu is held.
func (b *batcher) enqueue(e journalEntry) *pending {
	b.seq = max(b.seq, e.seq) + 1
	p := &pending{seq: b.seq, name: e.name, data: e.data, journaled: true,
		info: client.PutInfo{Name: e.name, Mode: e.mode, ModTime: e.mtime, Size: int64(len(e.data))}}
	b.queue = append(b.queue, p)
	b.latest[p.name] = p
	b.held += int64(len(p.data))
	b.kick()
	return p
}

// replay queues the journal's files that are not in the account yet.
func (b *batcher) replay(entries []journalEntry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range entries {
		p := b.enqueue(e)
		p.seq = e.seq // as written in the journal, which done records name
	}
}

// live returns the files not committed yet, batch (being committed)
// included, oldest first; b.mu is held.
func (b *batcher) live(batch []*pending) []journalEntry {
	seen := map[uint64]bool{}
	var out []journalEntry
	add := func(p *pending) {
		if !seen[p.seq] {
			seen[p.seq] = true
			out = append(out, journalEntry{seq: p.seq, name: p.name, mode: p.info.Mode, mtime: p.info.ModTime, data: p.data})
		}
	}
	for _, p := range batch {
		add(p)
	}
	for _, p := range b.queue {
		add(p)
	}
	for _, p := range b.latest { // those the account refused among them
		add(p)
	}
	slices.SortFunc(out, func(x, y journalEntry) int { return cmp.Compare(x.seq, y.seq) })
	return out
}

// kick starts a committing goroutine if none runs; b.mu is held.
func (b *batcher) kick() {
	if !b.busy {
		b.busy = true
		go b.run()
	}
}

// lookup returns the data of the newest uncommitted version of name.
func (b *batcher) lookup(name string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p, ok := b.latest[name]
	if !ok {
		return nil, false
	}
	return p.data, true
}

// pendingFiles returns the newest uncommitted version of each name.
func (b *batcher) pendingFiles() []*pending {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]*pending, 0, len(b.latest))
	for _, p := range b.latest {
		out = append(out, p)
	}
	return out
}

// flush returns once every file queued before it was called is
// committed (or refused), or waits for name's alone if name is set.
func (b *batcher) flush(name string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	upto := b.seq
	for b.waiting(name, upto) {
		b.cond.Wait()
	}
}

// waiting reports whether a file (name's, if set) of sequence at most
// upto is queued or being committed; b.mu is held.
func (b *batcher) waiting(name string, upto uint64) bool {
	for n, seq := range b.inflight {
		if seq <= upto && (name == "" || n == name) {
			return true
		}
	}
	for _, p := range b.queue {
		if p.seq <= upto && (name == "" || p.name == name) {
			return true
		}
	}
	return false
}

// drain waits, until ctx is done, for every queued file to be committed.
// It reports whether the journal holds nothing more.
func (b *batcher) drain(ctx context.Context) bool {
	stop := context.AfterFunc(ctx, func() {
		b.mu.Lock()
		b.cond.Broadcast()
		b.mu.Unlock()
	})
	defer stop()
	b.mu.Lock()
	defer b.mu.Unlock()
	for (len(b.queue) > 0 || b.busy) && ctx.Err() == nil {
		b.cond.Wait()
	}
	return len(b.queue) == 0 && !b.busy && !b.refused
}

// run commits batches until none is waiting.
func (b *batcher) run() {
	backoff := time.Second
	for {
		b.mu.Lock()
		var batch, rest []*pending
		seen := map[string]bool{}
		for _, p := range b.queue {
			// PutMany takes a name once: a second version waits.
			if seen[p.name] || len(batch) == maxBatch {
				rest = append(rest, p)
				continue
			}
			seen[p.name] = true
			batch = append(batch, p)
		}
		b.queue = rest
		if len(batch) == 0 {
			b.busy = false
			if b.j != nil && len(b.latest) == 0 && !b.refused {
				// Everything the journal held is in the account.
				if err := b.j.reset(nil); err != nil {
					slog.Warn("webdav: emptying the journal", "err", err)
				}
			}
			b.cond.Broadcast()
			b.mu.Unlock()
			return
		}
		for _, p := range batch {
			b.inflight[p.name] = p.seq
		}
		if b.j != nil && b.j.size() > b.compact {
			// Never idle long enough to be emptied: rewritten with the
			// files not yet committed alone.
			if err := b.j.reset(b.live(batch)); err != nil {
				slog.Warn("webdav: compacting the journal", "err", err)
			}
		}
		b.mu.Unlock()
		retry := b.commit(batch)
		b.mu.Lock()
		for _, p := range batch {
			delete(b.inflight, p.name)
		}
		if len(retry) > 0 {
			// Not answered to anyone yet in the account's eyes: back to
			// the front of the queue, in their order.
			b.queue = append(retry, b.queue...)
		}
		b.cond.Broadcast()
		b.mu.Unlock()
		if len(retry) > 0 {
			time.Sleep(backoff)
			backoff = min(2*backoff, 30*time.Second)
		} else {
			backoff = time.Second
		}
	}
}

// commit puts batch in one index update, each file alone if the index
// refuses the batch. It returns the journaled files to try again later
// (the server unreachable, say): their PUTs were answered already.
func (b *batcher) commit(batch []*pending) (retry []*pending) {
	// Not a request's context: the batch is everyone's, and a shutdown
	// waits for it.
	ctx := context.Background()
	srcs := make([]client.PutSource, len(batch))
	for i, p := range batch {
		srcs[i] = client.PutSource{Name: p.name, R: bytes.NewReader(p.data), Mode: p.info.Mode, ModTime: p.info.ModTime, Size: int64(len(p.data))}
	}
	files, err := b.acc.PutMany(ctx, srcs)
	var done []*pending
	end := func(p *pending, f indexfile.File, err error) {
		switch {
		case !p.journaled:
			p.file, p.err = f, err
			close(p.done)
		case err == nil:
			p.file = f
			done = append(done, p)
		case b.refuse(err):
		default:
			retry = append(retry, p)
		}
	}
	defer func() { b.committedAll(done) }()
	if err != nil && len(batch) > 1 && client.KindOf(err) != client.KindNetwork {
		// One file the index refuses fails the batch: each alone, so
		// that it fails only its own request.
		for _, p := range batch {
			f, err := b.acc.Put(ctx, bytes.NewReader(p.data), p.info, nil)
			end(p, f, err)
		}
		return retry
	}
	for i, p := range batch {
		var f indexfile.File
		e := err
		switch {
		case e != nil:
		case files[i].Name == "" && !p.journaled:
			e = &client.Error{Kind: client.KindConflict, Msg: fmt.Sprintf("another device stored %q at the same time: its version keeps the name", p.name)}
		default:
			f = files[i]
		}
		end(p, f, e)
	}
	return retry
}

// refuse reports whether err refuses a journaled file for good (another
// device made its name a folder meanwhile, say) rather than for now (the
// server unreachable). Such a file stays in the journal, and readable
// here, for the next start to try again.
func (b *batcher) refuse(err error) bool {
	switch client.KindOf(err) {
	case client.KindConflict, client.KindInvalid:
		slog.Warn("webdav: the account refused a file written earlier; it stays in the journal and is tried again at the next start", "err", err)
		b.mu.Lock()
		b.refused = true
		b.mu.Unlock()
		return true
	}
	slog.Warn("webdav: committing written files; trying again", "err", err)
	return false
}

// committedAll records journaled files as committed: in the journal, in
// what reads see, and through committed.
func (b *batcher) committedAll(done []*pending) {
	if len(done) == 0 {
		return
	}
	seqs := make([]uint64, len(done))
	newest := make([]bool, len(done))
	b.mu.Lock()
	for i, p := range done {
		seqs[i] = p.seq
		if newest[i] = b.latest[p.name] == p; newest[i] {
			delete(b.latest, p.name)
		}
		b.held -= int64(len(p.data))
	}
	b.mu.Unlock()
	b.j.done(seqs)
	if b.committed != nil {
		for i, p := range done {
			b.committed(p, p.file, newest[i])
		}
	}
}
