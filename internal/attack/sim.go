package attack

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/wire"
)

// SimConfig shapes a simulation. Zero fields take the defaults.
type SimConfig struct {
	Users        int // default 10
	MinFiles     int // files a user writes per window: from MinFiles (default 3)
	MaxFiles     int // to MaxFiles (default 5)
	MaxFileSize  int // blocks per file, from 1 (default 16)
	RenewBatch   int // blocks per renew request (default 32)
	DeleteChance int // percent of windows in which a user deletes a file (default 50)
	// Overlap is how many users are active at once (default: all). With
	// 1, each user's burst runs alone, as on a quiet server, where no
	// other writer's commit hides it.
	Overlap int
	Seed    uint64
}

func (c *SimConfig) defaults() {
	if c.Users == 0 {
		c.Users = 10
	}
	if c.MinFiles == 0 {
		c.MinFiles = 3
	}
	if c.MaxFiles == 0 {
		c.MaxFiles = 5
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = 16
	}
	if c.RenewBatch == 0 {
		c.RenewBatch = 32
	}
	if c.DeleteChance == 0 {
		c.DeleteChance = 50
	}
	if c.Overlap == 0 || c.Overlap > c.Users {
		c.Overlap = c.Users
	}
}

// Sim is a population of users writing through a blobstore.Service.
type Sim struct {
	cfg    SimConfig
	svc    *blobstore.Service
	window int
	period int

	mu     sync.Mutex
	owners map[wire.ID]Owner // live blocks
	users  []*user
}

type user struct {
	n       int
	secret  [32]byte
	rng     *mrand.Rand
	files   [][]wire.ID
	root    wire.ID
	etag    wire.ETag
	hasRoot bool
}

// NewSim makes cfg.Users users on svc.
func NewSim(svc *blobstore.Service, cfg SimConfig) *Sim {
	cfg.defaults()
	s := &Sim{cfg: cfg, svc: svc, owners: map[wire.ID]Owner{}}
	for i := 0; i < cfg.Users; i++ {
		u := &user{n: i, rng: mrand.New(mrand.NewPCG(cfg.Seed, uint64(i)+1)), root: wire.NewID()}
		if _, err := rand.Read(u.secret[:]); err != nil {
			panic(err)
		}
		s.users = append(s.users, u)
	}
	return s
}

// proof derives a block's write proof from the user's secret, as the
// client does.
func (u *user) proof(id wire.ID) wire.WriteProof {
	m := hmac.New(sha256.New, u.secret[:])
	m.Write([]byte("proof"))
	m.Write(id[:])
	var w wire.WriteProof
	m.Sum(w[:0])
	return w
}

func (s *Sim) block() []byte {
	d := make([]byte, s.svc.BlockSize())
	if _, err := rand.Read(d); err != nil {
		panic(err)
	}
	return d
}

func (s *Sim) own(id wire.ID, u *user) {
	s.mu.Lock()
	s.owners[id] = Owner{User: u.n, Window: s.window, Period: s.period, Lease: s.period}
	s.mu.Unlock()
}

// renewed records that id's lease was stamped in the current period.
func (s *Sim) renewed(id wire.ID) {
	s.mu.Lock()
	if o, ok := s.owners[id]; ok {
		o.Lease = s.period
		s.owners[id] = o
	}
	s.mu.Unlock()
}

func (s *Sim) disown(id wire.ID) {
	s.mu.Lock()
	delete(s.owners, id)
	s.mu.Unlock()
}

// NextWindow starts a new seal window: call it right after a seal.
func (s *Sim) NextWindow() { s.window++ }

// NextPeriod starts a new period: call it when the clock passes a period
// boundary.
func (s *Sim) NextPeriod() { s.period++ }

// Users is the number of users.
func (s *Sim) Users() int { return len(s.users) }

// Owners returns the ground truth of every live block.
func (s *Sim) Owners() map[wire.ID]Owner {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[wire.ID]Owner, len(s.owners))
	for id, o := range s.owners {
		out[id] = o
	}
	return out
}

// each runs fn for every user, Overlap users at a time, each starting
// after a random pause of a few milliseconds, so that their bursts
// overlap without starting in lockstep.
func (s *Sim) each(ctx context.Context, fn func(ctx context.Context, u *user) error) error {
	return s.some(ctx, nil, fn)
}

// some runs fn as each does, for the users numbered in which (nil: all).
func (s *Sim) some(ctx context.Context, which []int, fn func(ctx context.Context, u *user) error) error {
	users := s.users
	if which != nil {
		users = make([]*user, len(which))
		for i, n := range which {
			users[i] = s.users[n]
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(users))
	slots := make(chan struct{}, s.cfg.Overlap)
	for i, u := range users {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			time.Sleep(time.Duration(u.rng.IntN(5000)) * time.Microsecond)
			errs[i] = fn(ctx, u)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("user %d: %w", users[i].n, err)
		}
	}
	return nil
}

// WriteFiles has every user, at once, write a few files: each file in
// one batch write, then the user's root block overwritten by
// compare-and-swap (an index update), with short pauses between files.
// Some users then delete one of their files, block by block.
func (s *Sim) WriteFiles(ctx context.Context) error { return s.WriteFilesOf(ctx, nil) }

// WriteFilesOf is WriteFiles for the users numbered in which only (nil:
// all): on a small store, a seal window often holds a few users' writes.
func (s *Sim) WriteFilesOf(ctx context.Context, which []int) error {
	return s.some(ctx, which, func(ctx context.Context, u *user) error {
		nf := s.cfg.MinFiles + u.rng.IntN(s.cfg.MaxFiles-s.cfg.MinFiles+1)
		for f := 0; f < nf; f++ {
			size := 1 + u.rng.IntN(s.cfg.MaxFileSize)
			var file []wire.ID
			for len(file) < size {
				n := min(size-len(file), s.svc.Limits().WriteBatch)
				items := make([]blobstore.PutItem, n)
				for i := range items {
					id := wire.NewID()
					items[i] = blobstore.PutItem{ID: id, Proof: u.proof(id), Data: s.block(), Cond: blobstore.Cond{IfNoneMatchAny: true}}
					file = append(file, id)
				}
				rs, err := s.svc.PutBatch(ctx, items)
				if err != nil {
					return fmt.Errorf("write a file: %w", err)
				}
				for i, r := range rs {
					if r.Status != blobstore.StatusCreated {
						return fmt.Errorf("write a file: block %d: %s", i, r.Status)
					}
					s.own(items[i].ID, u)
				}
			}
			u.files = append(u.files, file)
			if err := s.writeRoot(ctx, u); err != nil {
				return err
			}
			time.Sleep(time.Duration(u.rng.IntN(3000)) * time.Microsecond)
		}
		if len(u.files) > 1 && u.rng.IntN(100) < s.cfg.DeleteChance {
			k := u.rng.IntN(len(u.files))
			for _, id := range u.files[k] {
				if _, err := s.svc.Delete(ctx, id, u.proof(id), blobstore.Cond{}); err != nil {
					return fmt.Errorf("delete a file: %w", err)
				}
				s.disown(id)
			}
			u.files = append(u.files[:k], u.files[k+1:]...)
			return s.writeRoot(ctx, u)
		}
		return nil
	})
}

// writeRoot creates or overwrites the user's root block.
func (s *Sim) writeRoot(ctx context.Context, u *user) error {
	c := blobstore.Cond{IfNoneMatchAny: true}
	if u.hasRoot {
		e := u.etag
		c = blobstore.Cond{IfMatch: &e}
	}
	r, err := s.svc.Put(ctx, blobstore.PutItem{ID: u.root, Proof: u.proof(u.root), Data: s.block(), Cond: c})
	if err != nil {
		return fmt.Errorf("write the root block: %w", err)
	}
	u.etag, u.hasRoot = r.ETag, true
	s.own(u.root, u)
	return nil
}

// RenewAll has every user, at once, log in: renew every block they hold
// in shuffled batches, as the client does at the first login of a period.
func (s *Sim) RenewAll(ctx context.Context) error { return s.RenewAllOf(ctx, nil) }

// RenewAllOf is RenewAll for the users numbered in which only (nil: all):
// one login renews one whole account at once.
func (s *Sim) RenewAllOf(ctx context.Context, which []int) error {
	return s.some(ctx, which, func(ctx context.Context, u *user) error {
		ids := []wire.ID{u.root}
		for _, f := range u.files {
			ids = append(ids, f...)
		}
		u.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
		for len(ids) > 0 {
			n := min(len(ids), s.cfg.RenewBatch)
			items := make([]blobstore.RenewItem, n)
			for i, id := range ids[:n] {
				items[i] = blobstore.RenewItem{ID: id, Proof: u.proof(id).Renew()}
			}
			rs, err := s.svc.Renew(ctx, items)
			if err != nil {
				return fmt.Errorf("renew: %w", err)
			}
			for i, r := range rs {
				if r.Status != blobstore.StatusRenewed && r.Status != blobstore.StatusCurrent {
					return fmt.Errorf("renew: block %d: %s", i, r.Status)
				}
				s.renewed(items[i].ID)
			}
			ids = ids[n:]
			time.Sleep(time.Duration(u.rng.IntN(2000)) * time.Microsecond)
		}
		return nil
	})
}

// ReadFiles has one user in every two, at once, read all of their
// blocks back, as a login that opens the user's files does. Reading is
// not writing, but a store may still keep a trace of what was read.
func (s *Sim) ReadFiles(ctx context.Context) error {
	return s.each(ctx, func(ctx context.Context, u *user) error {
		if u.n%2 == 1 {
			return nil
		}
		buf := make([]byte, 0, s.svc.BlockSize())
		ids := []wire.ID{u.root}
		for _, f := range u.files {
			ids = append(ids, f...)
		}
		for _, id := range ids {
			var err error
			if buf, _, err = s.svc.Get(ctx, id, buf); err != nil {
				return fmt.Errorf("read a file: %w", err)
			}
		}
		return nil
	})
}

// Verify reads every live block back and checks that it is there; a
// measurement of a store that lost blocks would mean nothing.
func (s *Sim) Verify(ctx context.Context) error {
	buf := make([]byte, 0, s.svc.BlockSize())
	for id := range s.Owners() {
		if _, _, err := s.svc.Get(ctx, id, buf); err != nil {
			return fmt.Errorf("a live block does not read back: %w", err)
		}
	}
	return nil
}
