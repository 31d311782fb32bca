package postgres

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/internal/pgtest"
)

// TestMain runs the test binary as the writing and sealing process that
// TestSealSurvivesKill kills, when asked to.
func TestMain(m *testing.M) {
	if url := os.Getenv("PG_SEAL_CHILD"); url != "" {
		sealChild(url, os.Getenv("PG_SEAL_CHILD_FP"))
	}
	os.Exit(m.Run())
}

const killBlockSize = 4096

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
// (Apply returned), "s" as a seal starts, "m" as it switched sides and
// begins its merge, "S" as it ends. It runs
// until killed, bounded by count and time.
func sealChild(url, fp string) {
	var p blobstore.Params
	p.BlockSize = killBlockSize
	if b, err := hex.DecodeString(fp); err != nil || copy(p.Fingerprint[:], b) != len(p.Fingerprint) {
		fmt.Println("bad fingerprint")
		os.Exit(2)
	}
	s, err := Open(context.Background(), url, p, Options{Logger: quietLogger(), MaxConns: 12})
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
	deadline := time.Now().Add(60 * time.Second)
	ctx := context.Background()
	testHookSwitched = func() { say("m") }
	go func() {
		for time.Now().Before(deadline) {
			say("s")
			if _, err := s.Seal(ctx); err != nil {
				say("e %v", err)
			}
			say("S")
			time.Sleep(100 * time.Millisecond)
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
				case len(mine) > 10 && rng.IntN(4) == 0: // overwrite
					id := mine[rng.IntN(len(mine))]
					d := killData(id, version[id]+1)
					ops = []blobstore.Op{{Kind: blobstore.OpPut, ID: id, ProofHash: killProof(id).Hash(), Data: d, ETag: blobstore.ETagOf(d), Bucket: killBuckets[0]}}
				case len(mine) > 10 && rng.IntN(4) == 0: // renewal
					id := mine[rng.IntN(len(mine))]
					ops = []blobstore.Op{{Kind: blobstore.OpRenew, ID: id, ProofHash: killProof(id).Renew().Hash(), Bucket: killBuckets[rng.IntN(2)]}}
				default: // a few new blocks in one batch
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
// kills it (SIGKILL) at a random instant inside a seal, three times over
// on one database: twice in the merge, after the switch, once anywhere. Every write it acknowledged reads back with the
// version acknowledged last, after each kill, and once more after a seal
// by a fresh store, which finishes what the killed seal left and leaves
// both hot sides empty.
func TestSealSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	url := pgtest.URL(t)
	p := testParams()
	p.BlockSize = killBlockSize
	openTest(t, url, p).Close() // migrate and record the params
	acked := map[blobstore.ID]byte{}
	ctx := context.Background()
	var resumed int
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "PG_SEAL_CHILD="+url, "PG_SEAL_CHILD_FP="+hex.EncodeToString(p.Fingerprint[:]))
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
		delay := time.Duration(mrand.IntN(40)) * time.Millisecond
		if round < 2 {
			delay /= 4
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
			case line == "s" || line == "m":
				if line == "s" {
					seals++
				}
				// The third seal after some writes: kill it part way,
				// in its merge in the first two rounds.
				inMerge := round < 2
				if seals >= 3 && writes > 200 && !killed && (line == "m") == inMerge {
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

		s := openTest(t, url, p)
		st, err := s.SealStats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		checkAcked(t, s, acked)
		rep := mustSeal(t, s)
		if rep.Resumed {
			resumed++
		}
		t.Logf("round %d: killed %v into a seal after %d seals and %d writes; %d rows awaited a seal, and the next seal rewrote %d blocks (resumed an interrupted one: %v)",
			round, delay, seals, writes, st.Rows, rep.Blocks, rep.Resumed)
		checkAcked(t, s, acked)
		checkSealed(t, connect(t, url))
		s.Close()
	}
	t.Logf("%d acknowledged blocks intact; %d of 3 kills left a seal to resume", len(acked), resumed)
	if resumed == 0 {
		t.Error("no kill interrupted a seal between its switch and the end of its merge")
	}
}

func checkAcked(t *testing.T, s *Store, acked map[blobstore.ID]byte) {
	t.Helper()
	var buf []byte
	for id, v := range acked {
		got, etag, err := s.Read(context.Background(), id, buf)
		if err != nil {
			t.Fatalf("an acknowledged block is gone: %v", err)
		}
		// A later version may have been written and not acknowledged
		// before the kill; an earlier one must never come back.
		ok := false
		for w := v; w < v+2 && !ok; w++ {
			ok = string(got) == string(killData(id, w)) && etag == blobstore.ETagOf(got)
		}
		if !ok {
			t.Fatalf("an acknowledged block reads back an older version than acknowledged (%d)", v)
		}
		buf = got
	}
}
