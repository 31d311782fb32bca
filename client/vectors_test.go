package client

// The account that docs/vectors.json describes (client/format's
// TestVectors holds the file to the format code) is one this client
// logs in to and reads: every block under "account" is stored on a real
// server as the file gives it, then Login, Get, Fetch and the recovery
// root must give back what the file says.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"

	"github.com/blindstore/blindstore/wire"

	"github.com/blindstore/blindstore/client/format"
)

func TestVectorAccount(t *testing.T) {
	raw, err := os.ReadFile("../docs/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		BlockSize int `json:"block_size"`
		Passwords []struct {
			Locator vecLocatorJSON `json:"locator"`
		} `json:"passwords"`
		Recovery struct {
			Locator vecLocatorJSON `json:"locator"`
		} `json:"recovery"`
		Account struct {
			Username   string    `json:"username"`
			AccountKey hexString `json:"account_key"`
			Index      struct {
				Files []struct {
					Name    string    `json:"name"`
					Content hexString `json:"content"`
				} `json:"files"`
			} `json:"index"`
			Share struct {
				File       string `json:"file"`
				Capability string `json:"capability"`
			} `json:"share"`
		} `json:"account"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	var tree struct {
		Account any `json:"account"`
	}
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	var items []BatchItem
	collectBlocks(t, tree.Account, &items)
	if len(items) < 8 {
		t.Fatalf("found %d blocks under account, want its roots, head, index and data", len(items))
	}

	srv := newTestServerSize(t, v.BlockSize)
	remote := srv.remote(t)
	ctx := context.Background()
	if err := remote.PutBatch(ctx, items); err != nil {
		t.Fatal(err)
	}
	a, err := LoginLocator(ctx, remote, v.Account.Username, v.Passwords[0].Locator.locator(t))
	if err != nil {
		t.Fatal(err)
	}
	files := a.Files()
	if len(files) != len(v.Account.Index.Files) {
		t.Fatalf("login reads %d files, the vectors list %d", len(files), len(v.Account.Index.Files))
	}
	contents := map[string][]byte{}
	for i, f := range files {
		want := v.Account.Index.Files[i]
		contents[want.Name] = want.Content
		if f.Name != want.Name {
			t.Fatalf("file %d is %q, the vectors list %q", i, f.Name, want.Name)
		}
		var buf bytes.Buffer
		if _, err := a.Get(ctx, f.Name, &buf, nil); err != nil {
			t.Fatalf("get %s: %v", f.Name, err)
		}
		if !bytes.Equal(buf.Bytes(), want.Content) {
			t.Errorf("get %s returns other content", f.Name)
		}
	}
	c, err := ParseCapability(v.Account.Share.Capability)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sf, err := Fetch(ctx, remote, c, &buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), contents[v.Account.Share.File]) {
		t.Errorf("the capability fetches %q with other content than %s", sf.Name, v.Account.Share.File)
	}
	r, err := readRoot(ctx, remote, v.Recovery.Locator.locator(t))
	if err != nil || !bytes.Equal(r.AccountKey[:], v.Account.AccountKey) {
		t.Fatalf("the recovery root does not open to the account key: %v", err)
	}
}

type hexString []byte

func (h *hexString) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

type vecLocatorJSON struct {
	ID    string    `json:"id"`
	Proof hexString `json:"proof"`
	Key   hexString `json:"key"`
}

func (l vecLocatorJSON) locator(t *testing.T) format.Locator {
	t.Helper()
	var loc format.Locator
	id, err := wire.ParseID(l.ID)
	if err != nil {
		t.Fatal(err)
	}
	loc.ID = id
	copy(loc.Proof[:], l.Proof)
	copy(loc.Key[:], l.Key)
	return loc
}

// collectBlocks gathers every block vector (an object with an id, the
// block's bytes and its write proof) below n.
func collectBlocks(t *testing.T, n any, out *[]BatchItem) {
	switch n := n.(type) {
	case []any:
		for _, e := range n {
			collectBlocks(t, e, out)
		}
	case map[string]any:
		id, ok1 := n["id"].(string)
		block, ok2 := n["block"].(string)
		proof, ok3 := n["write_proof"].(string)
		if ok1 && ok2 && ok3 {
			var it BatchItem
			var err error
			if it.ID, err = wire.ParseID(id); err != nil {
				t.Fatal(err)
			}
			if it.Data, err = hex.DecodeString(block); err != nil {
				t.Fatal(err)
			}
			p, err := hex.DecodeString(proof)
			if err != nil || len(p) != len(it.Proof) {
				t.Fatalf("write proof %q: %v", proof, err)
			}
			copy(it.Proof[:], p)
			*out = append(*out, it)
			return
		}
		for _, e := range n {
			collectBlocks(t, e, out)
		}
	}
}
