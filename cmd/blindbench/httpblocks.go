package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/blindstore/blindstore/wire"
)

// newHTTPClient is the client of every HTTP row: keep-alive connections,
// enough of them for the highest concurrency, no proxy (loopback only),
// and a timeout that bounds a hung request.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			IdleConnTimeout:     30 * time.Second,
			DisableCompression:  true,
		},
	}
}

// httpBlocks drives a block API over HTTP: blindstored's, or the bare
// server's, which answers the same requests without doing anything.
type httpBlocks struct {
	url  string
	hc   *http.Client
	pl   *payloads
	ids  idSet
	bufs [][]byte
	// fixedID, when set, is read instead of a written one (the bare
	// server has no blocks, and answers any id).
	fixedID *wire.ID
	// bare servers answer 201 to every PUT, blindstored to a create.
	wantPut int
}

func newHTTPBlocks(url string, hc *http.Client, pl *payloads, workers int) *httpBlocks {
	h := &httpBlocks{url: url, hc: hc, pl: pl, wantPut: http.StatusCreated}
	h.setWorkers(workers)
	return h
}

func (h *httpBlocks) setWorkers(n int) {
	for len(h.bufs) < n {
		h.bufs = append(h.bufs, make([]byte, len(h.pl.data[0])))
	}
}

// put creates a new block, as a client does: If-None-Match: * so that a
// clash of random ids could never overwrite.
func (h *httpBlocks) put(ctx context.Context, w int) error {
	id := wire.NewID()
	data, _ := h.pl.pick()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, h.url+wire.PathBlock+id.String(), bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", wire.MediaBlock)
	req.Header.Set(wire.HeaderProof, wire.EncodeProof(newProof()))
	req.Header.Set("If-None-Match", "*")
	resp, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("PUT: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != h.wantPut {
		return fmt.Errorf("PUT answered %s%s", resp.Status, problemCode(resp))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	if h.fixedID == nil {
		h.ids.add(id)
	}
	return nil
}

func (h *httpBlocks) get(ctx context.Context, w int) error {
	var id wire.ID
	if h.fixedID != nil {
		id = *h.fixedID
	} else {
		var err error
		if id, err = h.ids.pick(); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.url+wire.PathBlock+id.String(), nil)
	if err != nil {
		return err
	}
	resp, err := h.hc.Do(req)
	if err != nil {
		return fmt.Errorf("GET: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET answered %s%s", resp.Status, problemCode(resp))
	}
	buf := h.bufs[w]
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		return fmt.Errorf("GET body: %w", err)
	}
	if n, _ := io.Copy(io.Discard, resp.Body); n != 0 {
		return fmt.Errorf("GET body: %d bytes more than a block", n)
	}
	return nil
}

// problemCode returns ": <code>" from a problem+json answer, or "".
// Problem documents never carry ids, proofs or ETags.
func problemCode(resp *http.Response) string {
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), wire.MediaProblem) {
		return ""
	}
	var p wire.Problem
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&p); err != nil {
		return ""
	}
	return ": " + p.Code + " (" + p.Detail + ")"
}

// batchItem is one block of a batch write.
type batchItem struct {
	id    wire.ID
	proof wire.WriteProof
	data  []byte
}

// putBatch writes items in one POST /v1/blocks, framed by wire as
// every client frames it.
func putBatch(ctx context.Context, hc *http.Client, baseURL string, items []batchItem) error {
	m := &wire.BatchManifest{Blocks: make([]wire.BatchEntry, len(items))}
	data := make([][]byte, len(items))
	for i, it := range items {
		m.Blocks[i] = wire.BatchEntry{ID: it.id.String(), Proof: wire.EncodeProof(it.proof), CreateOnly: true}
		data[i] = it.data
	}
	body, err := wire.NewBatchBody(m, data)
	if err != nil {
		return err
	}
	req, err := body.NewRequest(ctx, baseURL)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("POST /v1/blocks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /v1/blocks answered %s%s", resp.Status, problemCode(resp))
	}
	var out wire.BatchResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&out); err != nil {
		return fmt.Errorf("POST /v1/blocks: %w", err)
	}
	if len(out.Results) != len(items) {
		return fmt.Errorf("POST /v1/blocks: %d results for %d blocks", len(out.Results), len(items))
	}
	for _, r := range out.Results {
		if r.Status != http.StatusCreated {
			return fmt.Errorf("POST /v1/blocks: a block answered %d %s", r.Status, r.Code)
		}
	}
	return nil
}

// renewItem is one block of a renew request.
type renewItem struct {
	id    wire.ID
	proof wire.RenewProof
}

// renew sends one POST /v1/renew and returns the server's counts.
func renew(ctx context.Context, hc *http.Client, baseURL string, items []renewItem) (*wire.RenewResponse, error) {
	m := wire.RenewRequest{Blocks: make([]wire.RenewEntry, len(items))}
	for i, it := range items {
		m.Blocks[i] = wire.RenewEntry{ID: it.id.String(), Proof: wire.EncodeProof(it.proof)}
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+wire.PathRenew, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", wire.MediaJSON)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST /v1/renew: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("POST /v1/renew answered %s%s", resp.Status, problemCode(resp))
	}
	var out wire.RenewResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("POST /v1/renew: %w", err)
	}
	return &out, nil
}
