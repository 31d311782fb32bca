package bolt

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
	"github.com/blindstore/blindstore/bucketer"
	"github.com/blindstore/blindstore/wire"
)

// crashData derives a block's content from its id, so the parent of a
// killed writer can check content without being sent it.
func crashData(id wire.ID) []byte {
	d := make([]byte, wire.MinBlockSize)
	seed := sha256.Sum256(id[:])
	for i := 0; i < len(d); i += len(seed) {
		copy(d[i:], seed[:])
	}
	return d
}

var crashParams = blobstore.Params{BlockSize: wire.MinBlockSize}

// TestMain runs the test binary as the writer that
// TestAcknowledgedWritesSurviveKill kills, the writer and sealer that
// TestSealSurvivesKill kills, or the store moving to schema 4 that
// TestMigrateSurvivesKill kills, when asked to.
func TestMain(m *testing.M) {
	if path := os.Getenv("BOLT_CRASH_CHILD"); path != "" {
		crashChild(path)
	}
	if path := os.Getenv("BOLT_SEAL_CHILD"); path != "" {
		sealChild(path)
	}
	if path := os.Getenv("BOLT_MIGRATE_CHILD"); path != "" {
		migrateChild(path)
	}
	os.Exit(m.Run())
}

// crashChild writes new blocks from 16 goroutines and prints each id once
// Apply has acknowledged it, until killed (or bounded by count and time).
func crashChild(path string) {
	s, err := Open(path, crashParams)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	deadline := time.Now().Add(30 * time.Second)
	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000 && time.Now().Before(deadline); i++ {
				id := wire.NewID()
				var w wire.WriteProof
				copy(w[:], id[:])
				d := crashData(id)
				op := blobstore.Op{Kind: blobstore.OpPut, ID: id, ProofHash: w.Hash(), Data: d, ETag: wire.ETagOf(d), Bucket: bucketer.Bucket{1}}
				rs, err := s.Apply(context.Background(), []blobstore.Op{op})
				if err != nil || rs[0].Status != blobstore.StatusCreated {
					continue
				}
				// Acknowledged: Apply returned after the commit's fsync.
				mu.Lock()
				fmt.Fprintln(out, hex.EncodeToString(id[:]))
				_ = out.Flush()
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

// TestAcknowledgedWritesSurviveKill kills a process in the middle of
// concurrent writes and checks that the store opens and holds every
// write the process acknowledged, intact.
func TestAcknowledgedWritesSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a writer process")
	}
	path := filepath.Join(t.TempDir(), "blocks.db")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "BOLT_CRASH_CHILD="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []wire.ID
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && len(acked) < 500 {
		b, err := hex.DecodeString(sc.Text())
		if err != nil || len(b) != 16 {
			t.Fatalf("child wrote %q", sc.Text())
		}
		acked = append(acked, wire.ID(b))
	}
	_ = cmd.Process.Kill()
	// Acknowledgements already in the pipe count too.
	for sc.Scan() {
		if b, err := hex.DecodeString(sc.Text()); err == nil && len(b) == 16 {
			acked = append(acked, wire.ID(b))
		}
	}
	_ = cmd.Wait()
	if len(acked) < 100 {
		t.Fatalf("the child acknowledged only %d writes before it stopped", len(acked))
	}

	s, err := Open(path, crashParams)
	if err != nil {
		t.Fatalf("open after kill: %v", err)
	}
	defer s.Close()
	ctx := context.Background()
	for i, id := range acked {
		got, etag, err := s.Read(ctx, id, nil)
		want := crashData(id)
		if err != nil || string(got) != string(want) || etag != wire.ETagOf(want) {
			t.Fatalf("acknowledged write %d of %d lost or damaged after kill: %v", i+1, len(acked), err)
		}
	}
	// The store is writable after the kill.
	id := wire.NewID()
	d := crashData(id)
	if _, err := s.Apply(ctx, []blobstore.Op{{Kind: blobstore.OpPut, ID: id, Data: d, ETag: wire.ETagOf(d), Bucket: bucketer.Bucket{1}}}); err != nil {
		t.Fatalf("write after kill: %v", err)
	}
	t.Logf("%d acknowledged writes intact after SIGKILL", len(acked))
}
