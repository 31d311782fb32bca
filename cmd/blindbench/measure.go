package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// maxOpsPerSegment bounds every measured loop in count as well as in time.
const maxOpsPerSegment = 5_000_000

// opFunc is one operation of a worker; w is the worker's index, for its
// own buffers.
type opFunc func(ctx context.Context, w int) error

// segment runs op from conc workers until d has passed (or the op count
// cap is reached) and returns how many ops completed and how long the
// whole took, up to the last worker's return.
func segment(ctx context.Context, conc int, d time.Duration, op opFunc) (int64, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return 0, 0, err
	}
	var (
		started atomic.Int64
		done    atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	t0 := time.Now()
	deadline := t0.Add(d)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) && started.Add(1) <= maxOpsPerSegment {
				if err := op(ctx, w); err != nil {
					errOnce.Do(func() { first = err; cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	return done.Load(), time.Since(t0), first
}

// variant is one side of a comparison: ours, or a baseline.
type variant struct {
	name string
	op   opFunc
}

// tally is what a variant did over all rounds.
type tally struct {
	ops     int64
	elapsed time.Duration
	rounds  []float64 // ops/s of each round
}

func (t tally) rate() float64 {
	if t.elapsed <= 0 {
		return 0
	}
	return float64(t.ops) / t.elapsed.Seconds()
}

// interleave measures the variants side by side: rounds rounds, in each
// of which every variant runs for total/rounds, the first variant of a
// round rotating so that none always runs on the heels of another. Each
// variant first runs a short unmeasured warm-up (connections, caches).
func interleave(ctx context.Context, conc int, total time.Duration, rounds int, vs []variant) ([]tally, error) {
	out := make([]tally, len(vs))
	warm := min(total/10, 200*time.Millisecond)
	for i, v := range vs {
		if _, _, err := segment(ctx, conc, warm, v.op); err != nil {
			return nil, fmt.Errorf("%s (warm-up): %w", vs[i].name, err)
		}
	}
	slice := total / time.Duration(rounds)
	for r := 0; r < rounds; r++ {
		for k := range vs {
			i := (r + k) % len(vs)
			n, el, err := segment(ctx, conc, slice, vs[i].op)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", vs[i].name, err)
			}
			if n == 0 {
				return nil, fmt.Errorf("%s: no operation finished in %v", vs[i].name, el.Round(time.Millisecond))
			}
			out[i].ops += n
			out[i].elapsed += el
			out[i].rounds = append(out[i].rounds, float64(n)/el.Seconds())
		}
	}
	return out, nil
}

// idSet is the ids a variant wrote, for its reads to pick from.
type idSet struct {
	mu  sync.Mutex
	ids []wire.ID
}

func (s *idSet) add(id wire.ID) {
	s.mu.Lock()
	s.ids = append(s.ids, id)
	s.mu.Unlock()
}

func (s *idSet) pick() (wire.ID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ids) == 0 {
		return wire.ID{}, errors.New("no block written to read back")
	}
	return s.ids[rand.IntN(len(s.ids))], nil
}

func (s *idSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.ids)
}

// payloads are a few random blocks that every write reuses: their content
// does not matter to any store, only their size.
type payloads struct {
	data  [][]byte
	etags []wire.ETag
}

func newPayloads(n, size int) *payloads {
	p := &payloads{}
	var seed [32]byte
	fillRandom(seed[:])
	src := rand.NewChaCha8(seed)
	for i := 0; i < n; i++ {
		d := make([]byte, size)
		_, _ = src.Read(d)
		p.data = append(p.data, d)
		p.etags = append(p.etags, wire.ETagOf(d))
	}
	return p
}

func (p *payloads) pick() ([]byte, wire.ETag) {
	i := rand.IntN(len(p.data))
	return p.data[i], p.etags[i]
}

// newProof returns a fresh random write proof. Proofs are random here:
// the server cannot tell them from derived ones.
func newProof() wire.WriteProof {
	var w wire.WriteProof
	fillRandom(w[:])
	return w
}
