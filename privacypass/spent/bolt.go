// Package spent keeps the nonces of spent Privacy Pass tokens, one set per
// token key (privacypass.SpentSet): in a bbolt file of its own beside the
// embedded block store, or in PostgreSQL beside the blocks.
//
// A set holds nonces and nothing else: no time, no block id, no order
// that a reader could date (bbolt keeps keys sorted; PostgreSQL rows are
// dropped with their table, never deleted one by one). A set is named
// after its token key only so that it can be dropped whole when the key
// retires. It must never log a nonce.
package spent

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/blindstore/blindstore/privacypass"
	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bolt is a SpentSet in a bbolt file: one bucket per token key, named by
// the key id, whose keys are the nonces (values empty).
//
// Spends are committed in groups: one goroutine commits whatever spends
// are waiting, and those that arrive meanwhile go together in the next
// commit. A lone spend waits for one commit (two fsyncs), not for a
// timer; under load each commit carries many.
type Bolt struct {
	db   *bbolt.DB
	reqs chan spendReq

	mu     sync.RWMutex // guards closed against sends on reqs
	closed bool
	done   chan struct{}
}

type spendReq struct {
	key   privacypass.KeyID
	nonce [privacypass.NonceSize]byte
	res   chan spendRes
}

type spendRes struct {
	fresh bool
	err   error
}

// maxGroup bounds the spends of one commit.
const maxGroup = 4096

// OpenBolt opens (creating it, mode 0600) the spent set file at path.
func OpenBolt(path string) (*Bolt, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("spent: open %s: %w", path, err)
	}
	b := &Bolt{db: db, reqs: make(chan spendReq, maxGroup), done: make(chan struct{})}
	go b.commits()
	return b, nil
}

// commits is the group committer.
func (b *Bolt) commits() {
	defer close(b.done)
	group := make([]spendReq, 0, maxGroup)
	for first := range b.reqs {
		group = append(group[:0], first)
	drain:
		for len(group) < maxGroup {
			select {
			case r, ok := <-b.reqs:
				if !ok {
					break drain
				}
				group = append(group, r)
			default:
				break drain
			}
		}
		fresh := make([]bool, len(group))
		err := b.db.Update(func(tx *bbolt.Tx) error {
			for i, r := range group {
				bk, err := tx.CreateBucketIfNotExists(r.key[:])
				if err != nil {
					return err
				}
				// A nonce twice in one group: the second sees the first.
				if bk.Get(r.nonce[:]) != nil {
					continue
				}
				if err := bk.Put(r.nonce[:], []byte{}); err != nil {
					return err
				}
				fresh[i] = true
			}
			return nil
		})
		for i, r := range group {
			if err != nil {
				r.res <- spendRes{err: fmt.Errorf("spent: record: %w", err)}
				continue
			}
			r.res <- spendRes{fresh: fresh[i]}
		}
	}
}

// Spend records nonce under key; it returns once the commit that holds
// it is durable.
func (b *Bolt) Spend(ctx context.Context, key privacypass.KeyID, nonce [privacypass.NonceSize]byte) (bool, error) {
	req := spendReq{key: key, nonce: nonce, res: make(chan spendRes, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return false, errors.New("spent: the set is closed")
	}
	select {
	case b.reqs <- req:
	case <-ctx.Done():
		b.mu.RUnlock()
		return false, ctx.Err()
	}
	b.mu.RUnlock()
	select {
	case r := <-req.res:
		return r.fresh, r.err
	case <-ctx.Done():
		// The spend may still be recorded: the token is used up either
		// way, which is the safe side.
		return false, ctx.Err()
	}
}

// Keys lists the key ids that have a set.
func (b *Bolt) Keys(ctx context.Context) ([]privacypass.KeyID, error) {
	var out []privacypass.KeyID
	err := b.db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			var id privacypass.KeyID
			if len(name) != len(id) {
				return fmt.Errorf("spent: a bucket named with %d bytes is not a key's set", len(name))
			}
			copy(id[:], name)
			out = append(out, id)
			return nil
		})
	})
	return out, err
}

// Drop deletes key's set.
func (b *Bolt) Drop(ctx context.Context, key privacypass.KeyID) error {
	err := b.db.Update(func(tx *bbolt.Tx) error {
		err := tx.DeleteBucket(key[:])
		if errors.Is(err, berrors.ErrBucketNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("spent: drop: %w", err)
	}
	return nil
}

// Close stops the committer, once the spends it holds are answered,
// and closes the file.
func (b *Bolt) Close() error {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.reqs)
	}
	b.mu.Unlock()
	<-b.done
	return b.db.Close()
}

var _ privacypass.SpentSet = (*Bolt)(nil)
