package client

// Accounts, docs/spec.md "Login": signing up, logging in (by password or
// recovery code), resuming a session, changing the password, deleting
// the account. What an open account reads and changes goes through the
// index transaction of indextx.go.

import (
	"context"
	cryptorand "crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
	"github.com/blindstore/blindstore/indexfile"
)

// Account is an open account: its secrets, and its head and index as
// last read from the server. Its methods are safe for concurrent use but
// run one at a time.
type Account struct {
	mu      sync.Mutex
	remote  Store
	cfg     *ServerConfig
	user    string
	root    *format.Root // secrets only
	headLoc format.Locator
	head    *format.Head
	etag    wire.ETag // of the head as last read or written
	index   *indexfile.Index
	// tree holds index in index blocks; nil while the head is version 1.
	tree *indexfile.Tree
	// table is the chunker's, derived from the account key.
	table *format.GearTable
	// seenGen is the highest head generation this account (or its
	// session) has seen: a head older than it is a rollback.
	seenGen uint64
	// renewed is the last period in which this client renewed the roots,
	// the head and the index blocks.
	renewed uint64
	// cache holds index blocks between commands (cache.go); nil: none.
	// fetched counts the index blocks read from the server instead,
	// since the last load.
	cache   BlockCache
	fetched atomic.Int64
	// lazy: the index's leaves are read when needed (lazyindex.go);
	// index is nil until then. openCtx is the context the account was
	// opened with, for the methods without one that need the index.
	// leafFiles and leafFirst keep the leaves read, and the first names
	// of those probed, by their first block.
	lazy      bool
	openCtx   context.Context
	leafFiles map[indexfile.Ref][]indexfile.File
	leafFirst map[indexfile.Ref]string
	// quietPeriod and quietIndex record that in that period the index of
	// that digest (indexDigest) had nothing to renew: a lazy account then
	// need not read its leaves to know (renew.go).
	quietPeriod uint64
	quietIndex  [32]byte
	// budget lends the block buffers of uploads (blockbudget.go).
	budgetOnce sync.Once
	budget     *blockBudget
}

func newAccount(ctx context.Context, remote Store, user string, root *format.Root, opts []Option) (*Account, error) {
	cfg, err := remote.Config(ctx)
	if err != nil {
		return nil, err
	}
	a := &Account{remote: remote, cfg: cfg, user: user, root: root, headLoc: root.HeadLocator(), table: format.ChunkerTable(root.AccountKey), openCtx: context.WithoutCancel(ctx)}
	for _, o := range opts {
		o(a)
	}
	return a, nil
}

// Remote returns the account's server.
func (a *Account) Remote() Store { return a.remote }

// Config returns the server's configuration.
func (a *Account) Config() *ServerConfig { return a.cfg }

// User returns the user name the account was opened with ("" after a
// recovery without one).
func (a *Account) User() string { return a.user }

// ErrAuth is the error of a login that finds no account: the user name
// or the password is wrong, or the account does not exist (which, by
// design, cannot be told apart).
var ErrAuth = &Error{Kind: KindAuth, Msg: "wrong user name or password, or no such account"}

// Signup creates an account: a root at the password's locator, a
// recovery root at a fresh recovery code's locator, and an empty head,
// in one batch write. The code is returned to be shown to the user once.
func Signup(ctx context.Context, remote Store, user, password string, device *format.DeviceKey, opts ...Option) (*Account, format.RecoveryCode, error) {
	loc, err := format.PasswordLocator(user, password, device)
	if err != nil {
		return nil, format.RecoveryCode{}, wrap(KindInvalid, "signup", err)
	}
	return signup(ctx, remote, user, loc, opts...)
}

func signup(ctx context.Context, remote Store, user string, loc format.Locator, opts ...Option) (*Account, format.RecoveryCode, error) {
	cfg, err := remote.Config(ctx)
	if err != nil {
		return nil, format.RecoveryCode{}, err
	}
	switch _, _, err := remote.Get(ctx, loc.ID, nil); {
	case err == nil:
		return nil, format.RecoveryCode{}, &Error{Kind: KindConflict, Msg: "an account with this user name and password already exists: log in instead"}
	case KindOf(err) != KindNotFound:
		return nil, format.RecoveryCode{}, wrap(KindNetwork, "signup", err)
	}
	root, err := format.NewRoot()
	if err != nil {
		return nil, format.RecoveryCode{}, err
	}
	code, err := format.NewRecoveryCode()
	if err != nil {
		return nil, format.RecoveryCode{}, err
	}
	rloc := code.Locator()
	a, err := newAccount(ctx, remote, user, root, opts)
	if err != nil {
		return nil, format.RecoveryCode{}, err
	}
	head := &format.Head{Generation: 1, Roots: []format.RootRef{
		{Kind: format.RootPassword, ID: loc.ID, Proof: loc.Proof},
		{Kind: format.RootRecovery, ID: rloc.ID, Proof: rloc.Proof},
	}}
	hdata, err := a.encryptHead(head)
	if err != nil {
		return nil, format.RecoveryCode{}, err
	}
	pdata, err := format.EncryptRoot(loc, root, cfg.BlockSize)
	if err != nil {
		return nil, format.RecoveryCode{}, err
	}
	rdata, err := format.EncryptRoot(rloc, root, cfg.BlockSize)
	if err != nil {
		return nil, format.RecoveryCode{}, err
	}
	err = remote.PutBatch(ctx, []BatchItem{
		{ID: a.headLoc.ID, Proof: a.headLoc.Proof, Data: hdata},
		{ID: rloc.ID, Proof: rloc.Proof, Data: rdata},
		{ID: loc.ID, Proof: loc.Proof, Data: pdata},
	})
	if err != nil {
		if KindOf(err) == KindConflict {
			return nil, format.RecoveryCode{}, &Error{Kind: KindConflict, Msg: "an account with this user name and password already exists: log in instead"}
		}
		return nil, format.RecoveryCode{}, wrap(KindNetwork, "signup", err)
	}
	// Everything is written in this period: the index's first commit
	// records that the account's blocks need no renewal until the next.
	a.head, a.etag, a.index, a.tree = head, wire.ETagOf(hdata), &indexfile.Index{Renewed: cfg.CurrentPeriod}, &indexfile.Tree{}
	a.seenGen = head.Generation
	a.renewed = cfg.CurrentPeriod
	return a, code, nil
}

// Login opens the account of a user name and password. It reads the
// root, the head and the index; it does not renew (call Renew, which
// costs nothing when nothing is stale).
func Login(ctx context.Context, remote Store, user, password string, device *format.DeviceKey, opts ...Option) (*Account, error) {
	loc, err := format.PasswordLocator(user, password, device)
	if err != nil {
		return nil, wrap(KindInvalid, "login", err)
	}
	return login(ctx, remote, user, loc, opts...)
}

// LoginLocator is Login with the locator PasswordLocator derived (the
// costly part, Argon2id) already: for a caller that derives it apart,
// to show progress or to time what follows.
func LoginLocator(ctx context.Context, remote Store, user string, loc format.Locator, opts ...Option) (*Account, error) {
	return login(ctx, remote, user, loc, opts...)
}

func login(ctx context.Context, remote Store, user string, loc format.Locator, opts ...Option) (*Account, error) {
	root, err := readRoot(ctx, remote, loc)
	if err != nil {
		return nil, err
	}
	return openAccount(ctx, remote, user, root, opts...)
}

// openAccount is newAccount with the account's head and index read.
func openAccount(ctx context.Context, remote Store, user string, root *format.Root, opts ...Option) (*Account, error) {
	a, err := newAccount(ctx, remote, user, root, opts)
	if err != nil {
		return nil, err
	}
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// LoginRecovery opens the account of a recovery code and sets a new
// password for user (whose name the code does not record): a new
// password root replaces the old one, which is deleted.
func LoginRecovery(ctx context.Context, remote Store, code format.RecoveryCode, user, newPassword string, device *format.DeviceKey, opts ...Option) (*Account, error) {
	newLoc, err := format.PasswordLocator(user, newPassword, device)
	if err != nil {
		return nil, wrap(KindInvalid, "recovery", err)
	}
	root, err := readRoot(ctx, remote, code.Locator())
	if err != nil {
		if KindOf(err) == KindAuth {
			return nil, &Error{Kind: KindAuth, Msg: "no account has this recovery code"}
		}
		return nil, err
	}
	a, err := openAccount(ctx, remote, user, root, opts...)
	if err != nil {
		return nil, err
	}
	if err := a.setPassword(ctx, newLoc); err != nil {
		return nil, err
	}
	return a, nil
}

func readRoot(ctx context.Context, remote Store, loc format.Locator) (*format.Root, error) {
	cfg, err := remote.Config(ctx)
	if err != nil {
		return nil, err
	}
	data, _, err := remote.Get(ctx, loc.ID, nil)
	if err != nil {
		if KindOf(err) == KindNotFound {
			return nil, ErrAuth
		}
		return nil, wrap(KindNetwork, "reading the account's root", err)
	}
	root, err := format.DecryptRoot(loc, data, cfg.BlockSize)
	if err != nil {
		return nil, wrap(KindTampered, "the account's root block", err)
	}
	return root, nil
}

// State is what a session keeps to act without the password: the
// account's secrets, never the password. It is as secret as the
// password itself; keep it in a file only its owner can read.
type State struct {
	Server      string `json:"server"`
	User        string `json:"user,omitempty"`
	AccountKey  string `json:"account_key"`  // base64url
	OwnerSecret string `json:"owner_secret"` // base64url
	// Generation is the highest head generation seen, to catch a
	// server that rolls the head back.
	Generation uint64 `json:"generation"`
	// Renewed is the last period in which this client renewed the roots.
	Renewed uint64 `json:"renewed"`
	// Quiet records a period in which the index of a digest (of the
	// dirs the head listed) had nothing to renew, as found by reading
	// it: a later command of that period on the same index need not read
	// it again to know (Account.Stale).
	Quiet *QuietRecord `json:"quiet,omitempty"`
}

// QuietRecord is State.Quiet.
type QuietRecord struct {
	Period uint64 `json:"period"`
	Index  string `json:"index"` // hex
}

// State returns the session state of a.
func (a *Account) State() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return State{
		Server:      a.remote.URL(),
		User:        a.user,
		AccountKey:  base64.RawURLEncoding.EncodeToString(a.root.AccountKey[:]),
		OwnerSecret: base64.RawURLEncoding.EncodeToString(a.root.OwnerSecret[:]),
		Generation:  a.seenGen,
		Renewed:     a.renewed,
		Quiet:       a.quietRecord(),
	}
}

// MarshalJSON is refused for Account: its state is secret, and only
// State, written on purpose, may carry it.
func (a *Account) MarshalJSON() ([]byte, error) {
	return nil, errors.New("client: an Account does not marshal; use State")
}

// Format prints a placeholder: an account holds secrets.
func (a *Account) Format(f fmt.State, _ rune) { writeRedacted(f) }

// Resume opens the account of a saved State on remote, reading its head
// and index.
func Resume(ctx context.Context, remote Store, st State, opts ...Option) (*Account, error) {
	var root format.Root
	ak, err1 := base64.RawURLEncoding.DecodeString(st.AccountKey)
	os, err2 := base64.RawURLEncoding.DecodeString(st.OwnerSecret)
	if err1 != nil || err2 != nil || len(ak) != format.KeySize || len(os) != format.KeySize {
		return nil, &Error{Kind: KindAuth, Msg: "the session is damaged: log in again"}
	}
	copy(root.AccountKey[:], ak)
	copy(root.OwnerSecret[:], os)
	if root.Validate() != nil {
		return nil, &Error{Kind: KindAuth, Msg: "the session is damaged: log in again"}
	}
	a, err := newAccount(ctx, remote, st.User, &root, opts)
	if err != nil {
		return nil, err
	}
	a.seenGen, a.renewed = st.Generation, st.Renewed
	if q := st.Quiet; q != nil {
		if d, err := hex.DecodeString(q.Index); err == nil && len(d) == len(a.quietIndex) {
			a.quietPeriod, a.quietIndex = q.Period, [32]byte(d)
		}
	}
	if err := a.load(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// Passwd sets a new password. currentPassword must be the account's
// password: a session alone cannot change it. A new root is written at
// the new locator, the head lists it, and the old root is deleted;
// nothing else is re-encrypted.
func (a *Account) Passwd(ctx context.Context, user, currentPassword, newPassword string, device *format.DeviceKey) error {
	cur, err := format.PasswordLocator(user, currentPassword, device)
	if err != nil {
		return wrap(KindInvalid, "passwd", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.hasRoot(format.RootPassword, cur.ID) {
		return &Error{Kind: KindAuth, Msg: "the current password (or user name) is wrong"}
	}
	newLoc, err := format.PasswordLocator(user, newPassword, device)
	if err != nil {
		return wrap(KindInvalid, "passwd", err)
	}
	if newLoc.ID == cur.ID {
		return &Error{Kind: KindInvalid, Msg: "the new password is the current one"}
	}
	if err := a.setPassword(ctx, newLoc); err != nil {
		return err
	}
	a.user = user
	return nil
}

func (a *Account) hasRoot(kind format.RootKind, id wire.ID) bool {
	for _, r := range a.head.Roots {
		if r.Kind == kind && r.ID == id {
			return true
		}
	}
	return false
}

// setPassword writes the account's root at loc, makes the head list it as
// the only password root, and deletes the password roots it replaces.
func (a *Account) setPassword(ctx context.Context, loc format.Locator) error {
	data, err := format.EncryptRoot(loc, a.root, a.cfg.BlockSize)
	if err != nil {
		return err
	}
	if _, err := a.remote.Put(ctx, loc.ID, loc.Proof, data, Cond{CreateOnly: true}); err != nil {
		var pe *PreconditionError
		if !errors.As(err, &pe) {
			return wrap(KindNetwork, "writing the new root", err)
		}
		// Something is there already: a root of ours from an attempt
		// that crashed is fine; anything else is another account.
		if r, err := readRoot(ctx, a.remote, loc); err != nil || r.AccountKey != a.root.AccountKey || r.OwnerSecret != a.root.OwnerSecret {
			return &Error{Kind: KindConflict, Msg: "another account already uses this user name and password: choose another password"}
		}
	}
	var replaced []format.RootRef
	for range maxUpdateAttempts {
		roots := []format.RootRef{{Kind: format.RootPassword, ID: loc.ID, Proof: loc.Proof}}
		replaced = replaced[:0]
		for _, r := range a.head.Roots {
			switch {
			case r.ID == loc.ID:
			case r.Kind == format.RootPassword:
				replaced = append(replaced, r)
			default:
				roots = append(roots, r)
			}
		}
		err := a.commit(ctx, nil, roots, nil)
		if err == nil {
			break
		}
		var pe *PreconditionError
		if !errors.As(err, &pe) {
			return err
		}
		if err := a.load(ctx); err != nil {
			return err
		}
	}
	if !a.hasRoot(format.RootPassword, loc.ID) {
		return &Error{Kind: KindConflict, Msg: "the account kept changing while the password was changed: try again"}
	}
	for _, r := range replaced {
		_ = a.remote.Delete(context.WithoutCancel(ctx), r.ID, r.Proof, nil)
	}
	return nil
}

// Delete deletes every block of the account: it first commits an empty
// index (which deletes every file's blocks), then deletes the index
// blocks, the roots and the head. A crash at any point leaves an account
// that is empty or gone; what is left expires.
func (a *Account) Delete(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := a.update(ctx, func(x *indexfile.Index) error {
		x.Files = nil
		return nil
	}); err != nil {
		return err
	}
	a.deleteRefs(ctx, a.indexBlocks())
	a.forget(a.indexBlocks())
	for _, r := range a.head.Roots {
		if err := a.remote.Delete(ctx, r.ID, r.Proof, nil); err != nil {
			return wrap(KindNetwork, "deleting the account's roots", err)
		}
	}
	if err := a.remote.Delete(ctx, a.headLoc.ID, a.headLoc.Proof, nil); err != nil {
		return wrap(KindNetwork, "deleting the account's head", err)
	}
	return nil
}

// parallel runs f(0…n-1) on at most workers goroutines and returns the
// first error; the others' contexts are cancelled then.
func parallel(ctx context.Context, n, workers int, f func(ctx context.Context, i int) error) error {
	if n == 0 {
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers = max(1, min(workers, n))
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(ctx, i); err != nil {
					once.Do(func() { first = err; cancel(err) })
				}
			}
		}()
	}
loop:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break loop
		}
	}
	close(next)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// shuffle randomizes the order of s with a cryptographically seeded
// generator: the server sees the order in which a batch names blocks.
func shuffle[T any](s []T) {
	var seed [32]byte
	if _, err := cryptorand.Read(seed[:]); err != nil {
		panic("client: no randomness: " + err.Error())
	}
	r := rand.New(rand.NewChaCha8(seed))
	r.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] })
}

var _ json.Marshaler = (*Account)(nil)
