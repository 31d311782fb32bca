package client

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// The file benchmarks move 32 MiB of 64 KiB blocks through a real
// blindstored (httpapi on the embedded store, no write pool window) on
// loopback, as blind put and get do. Run, e.g.:
//
//	go test -run '^$' -bench 'Put|Get' -benchtime 10x -cpuprofile files.prof ./client/
const benchFileSize = 32 << 20

// benchFileAccount is an account on a fresh server, and the random
// content of the benchmarks' file.
func benchFileAccount(b *testing.B) (*Account, []byte) {
	s := newTestServerSize(b, wire.DefaultBlockSize)
	a, _ := newTestAccount(b, s)
	return a, randomBytes(benchFileSize)
}

func benchPut(b *testing.B, a *Account, data []byte) {
	if _, err := a.Put(context.Background(), bytes.NewReader(data), PutInfo{Name: "f", Mode: 0o600, ModTime: time.Unix(1_700_000_000, 0)}, nil); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkPut(b *testing.B) {
	a, data := benchFileAccount(b)
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		benchPut(b, a, data)
		// Gone before the next put, which would otherwise reuse it all.
		b.StopTimer()
		if err := a.Remove(context.Background(), "f"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkGet reads the file into io.Discard.
func BenchmarkGet(b *testing.B) {
	a, data := benchFileAccount(b)
	benchPut(b, a, data)
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := a.Get(context.Background(), "f", io.Discard, nil); err != nil {
			b.Fatal(err)
		}
	}
}
