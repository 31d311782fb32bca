package davserver

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/indexfile"
)

// smallPut is the largest PUT held in memory and committed in a batch:
// four blocks' worth, as client.PutMany sends small files beside others.
const smallPut = 256 << 10

// maxBatch bounds the files of one batch.
const maxBatch = 256

// batcher commits small files in groups: the first to close is put at
// once, and those that close while its update is under way go together
// in the next (client.PutMany: one index update for all of them). Each
// caller still returns only once its own file is committed.
type batcher struct {
	acc Account

	mu    sync.Mutex
	queue []*pending
	busy  bool // a goroutine is committing
}

type pending struct {
	name string
	data []byte
	info client.PutInfo
	file indexfile.File
	err  error
	done chan struct{}
}

// put commits the file, with whatever others are waiting, and returns
// its index entry.
func (b *batcher) put(info client.PutInfo, data []byte) (indexfile.File, error) {
	p := &pending{name: info.Name, data: data, info: info, done: make(chan struct{})}
	b.mu.Lock()
	b.queue = append(b.queue, p)
	if !b.busy {
		b.busy = true
		go b.run()
	}
	b.mu.Unlock()
	<-p.done
	return p.file, p.err
}

// run commits batches until none is waiting.
func (b *batcher) run() {
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
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		b.commit(batch)
	}
}

func (b *batcher) commit(batch []*pending) {
	// Not a request's context: the batch is everyone's, and a shutdown
	// waits for it.
	ctx := context.Background()
	srcs := make([]client.PutSource, len(batch))
	for i, p := range batch {
		srcs[i] = client.PutSource{Name: p.name, R: bytes.NewReader(p.data), Mode: p.info.Mode, ModTime: p.info.ModTime, Size: int64(len(p.data))}
	}
	files, err := b.acc.PutMany(ctx, srcs)
	if err != nil && len(batch) > 1 {
		// One file the index refuses fails the batch: each alone, so
		// that it fails only its own request.
		for _, p := range batch {
			p.file, p.err = b.acc.Put(ctx, bytes.NewReader(p.data), p.info, nil)
			close(p.done)
		}
		return
	}
	for i, p := range batch {
		switch {
		case err != nil:
			p.err = err
		case files[i].Name == "":
			p.err = &client.Error{Kind: client.KindConflict, Msg: fmt.Sprintf("another device stored %q at the same time: its version keeps the name", p.name)}
		default:
			p.file = files[i]
		}
		close(p.done)
	}
}
