package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/blindstore/blindstore/wire"
)

// manyReader is a Store that can read several blocks in one request
// (POST /v1/read). Only *Remote is one, and only against a server that
// publishes read_batch; get.go reads block by block otherwise.
type manyReader interface {
	// readBatch is the most blocks one readMany may name, 0 when the
	// server reads only one block per request.
	readBatch(ctx context.Context) (int, error)
	// readMany reads ids and calls fn once per id, in order, with the
	// block's data (valid only while fn runs; buf, of at least
	// wire.ReadRecordSize bytes, holds it) or an error of KindNotFound.
	// A request cut short is retried for the ids fn has not yet seen, so
	// fn sees each id once. An error fn returns ends the read as it is.
	readMany(ctx context.Context, ids []wire.ID, buf []byte, fn func(i int, data []byte, err error) error) error
}

func (r *Remote) readBatch(ctx context.Context) (int, error) {
	cfg, err := r.Config(ctx)
	if err != nil {
		return 0, err
	}
	return cfg.Limits.ReadBatch, nil
}

// fnError carries an error of readMany's fn through Remote.do untouched:
// it is the caller's, not the request's, and is never retried.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

func (r *Remote) readMany(ctx context.Context, ids []wire.ID, buf []byte, fn func(i int, data []byte, err error) error) error {
	cfg, err := r.Config(ctx)
	if err != nil {
		return err
	}
	bs, rec := cfg.BlockSize, wire.ReadRecordSize(cfg.BlockSize)
	if len(buf) < rec {
		buf = make([]byte, rec)
	}
	done := 0 // ids fn has seen
	err = r.do(ctx, "reading blocks", func() (*http.Request, error) {
		req := wire.ReadRequest{IDs: make([]string, len(ids)-done)}
		for i, id := range ids[done:] {
			req.IDs[i] = id.String()
		}
		raw, err := json.Marshal(req)
		if err != nil {
			return nil, err
		}
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint(wire.PathRead), bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		hr.Header.Set("Content-Type", wire.MediaJSON)
		return hr, nil
	}, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return problemError(resp)
		}
		n := len(ids) - done
		if want := int64(n) * int64(rec); resp.ContentLength != want {
			return errorf(KindNetwork, "the server answered a read of %d blocks with %d bytes, not %d", n, resp.ContentLength, want)
		}
		for range n {
			data, _, err := wire.ReadRecord(resp.Body, buf, bs)
			if err != nil && wire.KindOf(err) != wire.KindNotFound {
				// Cut short (the server failed, or the connection
				// broke) or garbled: the ids fn has not seen go again.
				return transient(fmt.Errorf("reading blocks: %w", err))
			}
			if err != nil {
				err = &Error{Kind: KindNotFound, Msg: "no such block"}
			}
			i := done
			done++
			if ferr := fn(i, data, err); ferr != nil {
				return &fnError{ferr}
			}
		}
		return nil
	})
	var fe *fnError
	if errors.As(err, &fe) {
		return fe.err
	}
	return err
}

var _ manyReader = (*Remote)(nil)

// readBatchOf is the read_batch of remote, 0 when it reads one block per
// request.
func readBatchOf(ctx context.Context, remote Store) (manyReader, int, error) {
	m, ok := remote.(manyReader)
	if !ok {
		return nil, 0, nil
	}
	n, err := m.readBatch(ctx)
	if err != nil || n <= 1 {
		return nil, 0, err
	}
	return m, n, nil
}
