package bolt

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"go.etcd.io/bbolt"
)

const killBlockSize = 4096

var killParams = blobstore.Params{BlockSize: killBlockSize}

// killData derives a block's content from its id and a version, so that
// the parent checks content without being sent it.
func killData(id blobstore.ID, version byte) []byte {
	d := make([]byte, killBlockSize)
	seed := sha256.Sum256(append(id[:], version))
	for i := 0; i < len(d); i += len(seed) {
		copy(d[i:], seed[:])
	}
	return d
}

func killProof(id blobstore.ID) blobstore.WriteProof {
	return blobstore.WriteProof(sha256.Sum256(append([]byte("proof"), id[:]...)))
}

var killBuckets = [2]bucketer.Bucket{{1}, {2}}

// sealChild writes from 8 goroutines (new blocks, overwrites of blocks
// it wrote, renewals into the other bucket) and seals in a loop, and
// prints what it did: "w ID V" once a block holds version V for sure
// (Apply returned), "s" as a seal starts, "c" after each of its commits,
// "z" as its scrub starts, "S" as it ends. It runs until killed, bounded
// by count and time.
func sealChild(path string) {
	s, err := Open(path, killParams)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	say := func(format string, args ...any) {
		mu.Lock()
		fmt.Fprintf(out, format+"\n", args...)
		_ = out.Flush()
		mu.Unlock()
	}
	testHookSealStep = func(step string) {
		if step == "scrub" {
			say("z")
		} else {
			say("c")
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	ctx := context.Background()
	go func() {
		for time.Now().Before(deadline) {
			say("s")
			if _, err := s.Seal(ctx); err != nil {
				say("e %v", err)
			}
			say("S")
			time.Sleep(50 * time.Millisecond)
		}
	}()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			var mine []blobstore.ID
			version := map[blobstore.ID]byte{}
			for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
				var ops []blobstore.Op
				switch {
				case len(mine) > 10 && rng.IntN(4) == 0:
					id := mine[rng.IntN(len(mine))]
					d := killData(id, version[id]+1)
					ops = []blobstore.Op{{Kind: blobstore.OpPut, ID: id, ProofHash: killProof(id).Hash(), Data: d, ETag: blobstore.ETagOf(d), Bucket: killBuckets[0]}}
				case len(mine) > 10 && rng.IntN(4) == 0:
					id := mine[rng.IntN(len(mine))]
					ops = []blobstore.Op{{Kind: blobstore.OpRenew, ID: id, ProofHash: killProof(id).Renew().Hash(), Bucket: killBuckets[rng.IntN(2)]}}
				default:
					for k := 0; k < 1+rng.IntN(4); k++ {
						id := blobstore.NewID()
						d := killData(id, 0)
						ops = append(ops, blobstore.Op{Kind: blobstore.OpPut, ID: id, ProofHash: killProof(id).Hash(), Data: d, ETag: blobstore.ETagOf(d), Bucket: killBuckets[0]})
					}
				}
				rs, err := s.Apply(ctx, ops)
				if err != nil {
					continue
				}
				for k, op := range ops {
					switch {
					case op.Kind == blobstore.OpPut && rs[k].Status == blobstore.StatusCreated:
						mine = append(mine, op.ID)
						version[op.ID] = 0
						say("w %x 0", op.ID[:])
					case op.Kind == blobstore.OpPut && rs[k].Status == blobstore.StatusReplaced:
						version[op.ID]++
						say("w %x %d", op.ID[:], version[op.ID])
					}
				}
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

// TestSealSurvivesKill runs a process that writes and seals at once and
// kills it (SIGKILL) inside a seal, three times over on one file: between
// two of its commits, in its scrub, and at a random instant. After each
// kill the file opens, passes bbolt's consistency check, and every write
// acknowledged reads back with the version acknowledged last; a seal by a
// fresh store then leaves nothing unsealed, and everything still reads.
func TestSealSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	path := filepath.Join(t.TempDir(), "blocks.db")
	acked := map[blobstore.ID]byte{}
	ctx := context.Background()
	for round, at := range []string{"c", "z", "s"} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "BOLT_SEAL_CHILD="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		var seals, writes int
		killed := false
		delay := time.Duration(mrand.IntN(2000)) * time.Microsecond
		if at == "s" {
			delay *= 10
		}
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "w "):
				var id []byte
				var v byte
				if _, err := fmt.Sscanf(line, "w %x %d", &id, &v); err != nil || len(id) != 16 {
					t.Fatalf("child said %q", line)
				}
				acked[blobstore.ID(id)] = v
				writes++
			case line == "s" || line == "c" || line == "z":
				if line == "s" {
					seals++
				}
				if seals >= 3 && writes > 300 && !killed && line == at {
					killed = true
					go func() {
						time.Sleep(delay)
						_ = cmd.Process.Kill()
					}()
				}
			case strings.HasPrefix(line, "e "):
				t.Errorf("child's seal failed: %s", line)
			case line == "S":
			default:
				t.Fatalf("child said %q", line)
			}
		}
		_ = cmd.Wait()
		if !killed {
			t.Fatalf("round %d: the child stopped before it could be killed (%d seals, %d writes)", round, seals, writes)
		}

		s, err := Open(path, killParams)
		if err != nil {
			t.Fatalf("open after the kill: %v", err)
		}
		checkFile(t, s)
		st, err := s.SealStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkKilledAcked(t, s, acked)
		rep, err := s.Seal(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after, err := s.SealStats(ctx)
		if err != nil || after.Blocks != 0 {
			t.Fatalf("after the next seal: %+v, %v; want nothing unsealed", after, err)
		}
		checkKilledAcked(t, s, acked)
		checkFile(t, s)
		t.Logf("round %d: killed %v after %q of a seal (%d seals, %d writes); %d blocks awaited a seal, the next seal rewrote %d",
			round, delay, at, seals, writes, st.Blocks, rep.Blocks)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acknowledged blocks intact", len(acked))
}

// checkFile runs bbolt's consistency check: every page reachable once,
// free pages not reachable.
func checkFile(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the file fails bbolt's check: %v", err)
	}
}

func checkKilledAcked(t *testing.T, s *Store, acked map[blobstore.ID]byte) {
	t.Helper()
	var buf []byte
	for id, v := range acked {
		got, etag, err := s.Read(context.Background(), id, buf)
		if err != nil {
			t.Fatalf("an acknowledged block is gone: %v", err)
		}
		// A later version may have been written and not acknowledged
		// before the kill; an earlier one must never come back.
		if !(string(got) == string(killData(id, v)) || string(got) == string(killData(id, v+1))) || etag != blobstore.ETagOf(got) {
			t.Fatalf("an acknowledged block reads back another version than acknowledged (%d)", v)
		}
		buf = got
	}
}
