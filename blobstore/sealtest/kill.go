package sealtest

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// KillBlockSize is the block size of the store a kill test's child
// writes: the store's test opens it with this size on both sides.
const KillBlockSize = 4096

// killData derives a block's content from its id and a version, so that
// the parent checks content without being sent it.
func killData(id wire.ID, version byte) []byte {
	d := make([]byte, KillBlockSize)
	seed := sha256.Sum256(append(id[:], version))
	for i := 0; i < len(d); i += len(seed) {
		copy(d[i:], seed[:])
	}
	return d
}

func killProof(id wire.ID) wire.WriteProof {
	return wire.WriteProof(sha256.Sum256(append([]byte("proof"), id[:]...)))
}

var killBuckets = [2]bucketer.Bucket{{1}, {2}}

// The child's lines, one per event: "w ID V" once a block holds version
// V for sure (Apply returned), "s" as a seal starts, "S" as it ends,
// "e ERR" if it failed. A store's seal hooks add marks of their own
// (Child.Say) for the steps a kill may aim at.
const (
	markSealStart = "s"
	markSealEnd   = "S"
)

// Child is the writing and sealing process a kill test kills. The store's
// test builds it in its TestMain when the parent asks, sets its store's
// seal hooks to call Say, and calls Run.
type Child struct {
	mu  sync.Mutex
	out *bufio.Writer
}

// NewChild returns a child that speaks on standard output.
func NewChild() *Child { return &Child{out: bufio.NewWriter(os.Stdout)} }

// Say prints one line at once, so that the parent can kill the child as
// it passes a point.
func (c *Child) Say(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.out, format+"\n", args...)
	_ = c.out.Flush()
}

// Run writes from 8 goroutines (new blocks, overwrites of blocks it
// wrote, renewals into the other bucket) while it seals in a loop,
// pausing between seals, and exits. It runs until killed, bounded by
// count and time; it never returns.
func (c *Child) Run(s Store, pause time.Duration) {
	deadline := time.Now().Add(60 * time.Second)
	ctx := context.Background()
	go func() {
		seals := 0
		for time.Now().Before(deadline) {
			c.Say(markSealStart)
			if _, err := s.Seal(ctx); err != nil {
				c.Say("e %v", err)
			}
			c.Say(markSealEnd)
			if seals++; seals%2 == 0 {
				c.merge(ctx, s)
			}
			time.Sleep(pause)
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Go(func() { c.write(ctx, s, uint64(g), deadline) })
	}
	wg.Wait()
	os.Exit(0)
}

func (c *Child) write(ctx context.Context, s Store, g uint64, deadline time.Time) {
	rng := mrand.New(mrand.NewPCG(g, uint64(time.Now().UnixNano())))
	var mine []wire.ID
	version := map[wire.ID]byte{}
	for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
		var ops []blobstore.Op
		switch {
		case len(mine) > 10 && rng.IntN(4) == 0: // overwrite
			id := mine[rng.IntN(len(mine))]
			d := killData(id, version[id]+1)
			ops = []blobstore.Op{{Kind: blobstore.OpPut, ID: id, ProofHash: killProof(id).Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: killBuckets[0]}}
		case len(mine) > 10 && rng.IntN(4) == 0: // renewal
			id := mine[rng.IntN(len(mine))]
			ops = []blobstore.Op{{Kind: blobstore.OpRenew, ID: id, ProofHash: killProof(id).Renew().Hash(), Bucket: killBuckets[rng.IntN(2)]}}
		default: // a few new blocks in one batch
			for k := 0; k < 1+rng.IntN(4); k++ {
				id := wire.NewID()
				d := killData(id, 0)
				ops = append(ops, blobstore.Op{Kind: blobstore.OpPut, ID: id, ProofHash: killProof(id).Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: killBuckets[0]})
			}
		}
		rs, err := s.Apply(ctx, ops)
		if err != nil {
			// Only acknowledged writes count; the parent hears of none.
			continue
		}
		for k, op := range ops {
			switch {
			case op.Kind == blobstore.OpPut && rs[k].Status == blobstore.StatusCreated:
				mine = append(mine, op.ID)
				version[op.ID] = 0
				c.Say("w %x 0", op.ID[:])
			case op.Kind == blobstore.OpPut && rs[k].Status == blobstore.StatusReplaced:
				version[op.ID]++
				c.Say("w %x %d", op.ID[:], version[op.ID])
			}
		}
	}
}

// KillRound is one kill: at the child's first line At once it has
// sealed MinSeals times and acknowledged more than MinWrites writes, the
// parent waits a random time below MaxDelay and kills it.
type KillRound struct {
	At       string
	MaxDelay time.Duration
}

// KillConfig is what Kill needs of a store.
type KillConfig struct {
	// ChildEnv is what the test binary's TestMain, run again as a child
	// with these variables added to its environment, needs to run a Child
	// over the store Open opens.
	ChildEnv []string
	// Open opens the store the child wrote, after a kill. Kill closes it.
	Open func(t *testing.T) (Store, error)
	// Check checks the store's own state after a kill (sealed false) and
	// after the next seal by a fresh store (sealed true).
	Check func(t *testing.T, s Store, sealed bool)
	// Marks are the marks the store's seal hooks make the child say.
	Marks []string
	// Rounds are the kills, all on one store, in order.
	Rounds []KillRound
	// MinSeals and MinWrites say how far the child must get before a kill.
	MinSeals, MinWrites int
	// WantResumed requires at least one kill to leave a seal that the
	// next seal reports it resumed.
	WantResumed bool
	// WantMergeResumed requires at least one kill to leave a merge
	// (a store's merge of several commits) that the next merge resumes.
	WantMergeResumed bool
}

// Kill runs a process that writes and seals at once and kills it
// (SIGKILL) inside a seal, once per round, on one store. After each kill
// every write acknowledged reads back with the version acknowledged last
// (or a later one the child wrote and was killed before acknowledging),
// and again after a seal by a fresh store, which must finish what the
// killed seal left and leave nothing unsealed.
func Kill(t *testing.T, cfg KillConfig) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	acked := map[wire.ID]byte{}
	ctx := context.Background()
	var resumed, mergesResumed int
	for round, r := range cfg.Rounds {
		cmd, sc := StartChild(t, cfg.ChildEnv...)
		var seals, writes int
		killed := false
		delay := time.Duration(mrand.Int64N(int64(r.MaxDelay)))
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "w "):
				var id []byte
				var v byte
				if _, err := fmt.Sscanf(line, "w %x %d", &id, &v); err != nil || len(id) != 16 {
					t.Fatalf("child said %q", line)
				}
				acked[wire.ID(id)] = v
				writes++
			case line == markSealStart || line == markMergeStart || slices.Contains(cfg.Marks, line):
				if line == markSealStart {
					seals++
				}
				if seals >= cfg.MinSeals && writes > cfg.MinWrites && !killed && line == r.At {
					killed = true
					go func() {
						time.Sleep(delay)
						_ = cmd.Process.Kill()
					}()
				}
			case strings.HasPrefix(line, "e "):
				t.Errorf("child's seal failed: %s", line)
			case line == markSealEnd || line == markMergeEnd:
			default:
				t.Fatalf("child said %q", line)
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: the child stopped before it could be killed (%d seals, %d writes)", round, seals, writes)
		}

		s, err := cfg.Open(t)
		if err != nil {
			t.Fatalf("open after the kill: %v", err)
		}
		cfg.Check(t, s, false)
		st, err := s.SealStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAcked(t, s, acked)
		// A store that merges finishes the merge the kill may have
		// interrupted, before anything else.
		mrep, merges := afterKillMerge(t, s, acked)
		if mrep.Resumed {
			mergesResumed++
		}
		rep := mustSeal(t, s)
		if rep.Resumed {
			resumed++
		}
		checkAllSealed(t, s, "after the next seal")
		checkAcked(t, s, acked)
		cfg.Check(t, s, true)
		t.Logf("round %d: killed %v after %q (%d seals, %d writes); %d blocks in %d rows awaited a seal, the next seal rewrote %d (resumed an interrupted one: %v)",
			round, delay, r.At, seals, writes, st.Blocks, st.Rows, rep.Blocks, rep.Resumed)
		if merges {
			t.Logf("round %d: the merge after the kill rewrote %d blocks and %d leases (resumed an interrupted one: %v)", round, mrep.Blocks, mrep.Leases, mrep.Resumed)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acknowledged blocks intact; %d of %d kills left a seal to resume", len(acked), resumed, len(cfg.Rounds))
	if cfg.WantResumed && resumed == 0 {
		t.Error("no kill interrupted a seal where the next seal resumes it")
	}
	if cfg.WantMergeResumed && mergesResumed == 0 {
		t.Error("no kill interrupted a merge where the next merge resumes it")
	}
}

func checkAcked(t *testing.T, s Store, acked map[wire.ID]byte) {
	t.Helper()
	var buf []byte
	for id, v := range acked {
		got, etag, err := s.Read(context.Background(), id, buf)
		if err != nil {
			t.Fatalf("an acknowledged block is gone: %v", err)
		}
		// A later version may have been written and not acknowledged
		// before the kill; an earlier one must never come back.
		if !(string(got) == string(killData(id, v)) || string(got) == string(killData(id, v+1))) || etag != wire.ETagOf(got) {
			t.Fatalf("an acknowledged block reads back another version than acknowledged (%d)", v)
		}
		buf = got
	}
}

// StartChild runs this test binary again with no test selected and env
// added, for a child process that a test kills part way; the scanner
// reads the lines the child prints as it goes.
func StartChild(t testing.TB, env ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, bufio.NewScanner(stdout)
}
