package client

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/blindstore/blindstore/blobstore"
)

// BenchmarkGet reads a 32 MiB file of 64 KiB blocks through a real
// blindstored (httpapi on the embedded store) on loopback, as blind get
// does, into io.Discard. Run:
//
//	go test -run '^$' -bench Get -benchtime 20x -cpuprofile get.prof ./client/
func BenchmarkGet(b *testing.B) {
	const size = 32 << 20
	s := newTestServerSize(b, blobstore.DefaultBlockSize)
	a, _ := newTestAccount(b, s)
	data := randomBytes(size)
	if _, err := a.Put(context.Background(), bytes.NewReader(data), PutInfo{Name: "f", Mode: 0o600, ModTime: time.Unix(1_700_000_000, 0)}, nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Get(context.Background(), "f", io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
}
