package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/blindstore/blindstore/client"
	"github.com/blindstore/blindstore/client/format"
)

// refuseTransport stands for a server that cannot be reached.
type refuseTransport struct{}

func (refuseTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no server in this test")
}

// FuzzSessionFile feeds the session file as another program, a broken
// disk or a hand edit may leave it: loading refuses what it cannot use as
// an authentication problem (log in again), and resuming from what loads
// either refuses damaged secrets the same way or goes on to the network.
// Nothing panics, and nothing resumes without a server.
func FuzzSessionFile(f *testing.F) {
	dir := f.TempDir()
	f.Setenv("BLIND_CONFIG_DIR", dir)
	key := base64.RawURLEncoding.EncodeToString(make([]byte, format.KeySize))
	good, _ := json.Marshal(session{State: client.State{Server: "http://127.0.0.1:7878", User: "alice", AccountKey: key, OwnerSecret: key, Generation: 3}})
	f.Add(good)
	f.Add([]byte(`{"server":"http://x","account_key":"` + key + `=","owner_secret":""}`))
	f.Add([]byte(`{"server":"ftp://x","account_key":"` + key + `","owner_secret":"` + key + `","device_key_file":"/etc/passwd"}`))
	f.Add([]byte(`{"server":""}`))
	f.Add([]byte(`null`))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		if err := os.WriteFile(filepath.Join(dir, sessionFile), in, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := loadSession()
		if err != nil {
			if client.KindOf(err) != client.KindAuth {
				t.Fatalf("a damaged session file is a %v error: %v", client.KindOf(err), err)
			}
			return
		}
		r, err := client.NewRemote(s.Server, &http.Client{Transport: refuseTransport{}})
		if err != nil {
			return // a server that is not a URL: refused before any use
		}
		r.Retries, r.Backoff = 0, 0
		acc, err := client.Resume(context.Background(), r, s.State)
		if err == nil || acc != nil {
			t.Fatal("resumed a session without a server")
		}
		if k := client.KindOf(err); k != client.KindAuth && k != client.KindNetwork {
			t.Fatalf("resuming: a %v error: %v", k, err)
		}
	})
}
