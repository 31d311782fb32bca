package client

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
)

// BenchmarkPut writes a 32 MiB file of 64 KiB blocks through a real
// blindstored (httpapi on the embedded store, no write pool window) on
// loopback, as blind put does. Run:
//
//	go test -run '^$' -bench Put -benchtime 10x -cpuprofile put.prof ./client/
func BenchmarkPut(b *testing.B) {
	const size = 32 << 20
	s := newTestServerSize(b, blobstore.DefaultBlockSize)
	a, _ := newTestAccount(b, s)
	data := randomBytes(size)
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Put(context.Background(), bytes.NewReader(data), PutInfo{Name: "f", Mode: 0o600, ModTime: time.Unix(1_700_000_000, 0)}, nil); err != nil {
			b.Fatal(err)
		}
		// Gone before the next put, which would otherwise reuse it all.
		b.StopTimer()
		if err := a.Remove(context.Background(), "f"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
