package main

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/blindstore/blindstore/internal/pgtest"
	"github.com/blindstore/blindstore/internal/redistest"
	"github.com/blindstore/blindstore/wire"
)

// Three instances on one PostgreSQL and one Redis, as an operator runs
// them behind a load balancer: a block written through one reads back
// through the others, and the scheduled purge runs once per tick across
// all three, not once per instance.
func TestThreeInstancesShareStoreAndPurgeOnce(t *testing.T) {
	pg := pgtest.URL(t)
	redisURL := redistest.URL(t)
	// A key shared by the instances, as a deployment would distribute it.
	keyHex, _ := runCLI(t, nil, "keygen")
	env := []string{
		"BLINDSTORE_STORE=" + pg,
		"BLINDSTORE_REDIS=" + redisURL,
		"BLINDSTORE_BUCKET_KEY=" + strings.TrimSpace(keyHex),
		"BLINDSTORE_BLOCK_SIZE=4096",
		"BLINDSTORE_PURGE_EVERY=1s",
		"BLINDSTORE_POOL_WINDOW=20ms",
	}
	start := time.Now()
	var servers []*server
	for i := 0; i < 3; i++ {
		servers = append(servers, startServer(t, env, "--data", t.TempDir()))
	}

	// Write through each instance, read through the next.
	block := make([]byte, 4096)
	for i, s := range servers {
		rand.Read(block)
		var w wire.WriteProof
		rand.Read(w[:])
		id := wire.NewID()
		etag, err := putBlock(t.Context(), s.url, id, w, block)
		if err != nil {
			t.Fatalf("write through instance %d: %v", i, err)
		}
		other := servers[(i+1)%len(servers)]
		resp, body := getBlock(t, other.url, id)
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, block) || resp.Header.Get("ETag") != etag {
			t.Fatalf("written through instance %d, read through %d: %s", i, (i+1)%len(servers), resp.Status)
		}
	}

	// Let several one-second ticks pass, then count purges across all
	// three logs: with the shared locker each tick runs once in total.
	time.Sleep(5 * time.Second)
	elapsed := time.Since(start)
	runs := 0
	for _, s := range servers {
		runs += strings.Count(s.logs.String(), `msg="purge done"`)
	}
	ticks := int(elapsed/time.Second) + 1
	if runs < 3 {
		t.Fatalf("only %d purges in %v across three instances; scheduled purges do not run", runs, elapsed.Round(time.Millisecond))
	}
	// Each instance alone would purge about `ticks` times, three of them
	// about 3×ticks; allow one extra run per instance for the purge each
	// runs at start before its first aligned tick.
	if max := ticks + len(servers); runs > max {
		t.Fatalf("%d purges in %v (%d ticks) across three instances; want at most %d: the locker lets a tick run more than once", runs, elapsed.Round(time.Millisecond), ticks, max)
	}
	t.Logf("%d purges across 3 instances in %v (%d one-second ticks)", runs, elapsed.Round(time.Millisecond), ticks)
}
