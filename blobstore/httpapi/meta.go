package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/blindstore/blindstore/blobstore"
)

//go:embed openapi.json
var openapiDoc []byte

// readyTimeout bounds the readiness checks: a load balancer probing
// /readyz wants an answer, and a store that takes longer is not ready.
const readyTimeout = 3 * time.Second

func (a *api) healthz(x *exchange) {
	writeText(x.w, x.r, "ok\n")
}

func (a *api) readyz(x *exchange) {
	ctx, cancel := context.WithTimeout(x.r.Context(), readyTimeout)
	defer cancel()
	err := a.svc.Store().Ping(ctx)
	if err != nil {
		err = fmt.Errorf("store ping: %w", err)
	} else if a.opt.Ready != nil {
		if err = a.opt.Ready(ctx); err != nil {
			err = fmt.Errorf("readiness check: %w", err)
		}
	}
	if err != nil {
		x.fail(a, blobstore.Wrap(blobstore.KindUnavailable, blobstore.CodeUnavailable, "not ready", err))
		return
	}
	writeText(x.w, x.r, "ready\n")
}

func writeText(w http.ResponseWriter, r *http.Request, s string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(s)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(s))
}

// Config is the body of GET /v1/config: everything a client must know to
// talk to this deployment, and every limit it may run into.
type Config struct {
	Version          string       `json:"version"`
	BlockSize        int          `json:"block_size"`
	PeriodSeconds    int64        `json:"period_seconds"`
	RetentionPeriods int          `json:"retention_periods"`
	CurrentPeriod    uint64       `json:"current_period"`
	Limits           ConfigLimits `json:"limits"`
	// Tokens is present when writes are paid with Privacy Pass tokens
	// (tokens.go).
	Tokens *ConfigTokens `json:"tokens,omitempty"`
}

// ConfigLimits are the request limits of /v1/config.
type ConfigLimits struct {
	RenewBatch int `json:"renew_batch"` // ids per POST /v1/renew
	WriteBatch int `json:"write_batch"` // blocks per POST /v1/blocks
	// MaxBatchRefs is the most entries without data (deletions and
	// checks) one POST /v1/blocks may carry; its presence says the
	// server takes them, and atomic batches.
	MaxBatchRefs      int   `json:"max_batch_refs"`
	MaxHeaderBytes    int   `json:"max_header_bytes"`     // request line and headers
	MaxManifestBytes  int   `json:"max_manifest_bytes"`   // JSON manifest of POST /v1/blocks
	MaxBatchBodyBytes int64 `json:"max_batch_body_bytes"` // whole body of POST /v1/blocks
	MaxRenewBodyBytes int64 `json:"max_renew_body_bytes"` // whole body of POST /v1/renew
	// Failed probes allowed per client address; absent when the limiter
	// does not say.
	ProbeRatePerSecond *float64 `json:"probe_rate_per_second,omitempty"`
	ProbeBurst         *int     `json:"probe_burst,omitempty"`
	// Blocks each client address may write in an open store (no
	// tokens); absent when there is no such limit.
	WriteRatePerSecond *float64 `json:"write_rate_per_second,omitempty"`
	WriteBurst         *int     `json:"write_burst,omitempty"`
	// MaxBlocks is the capacity cap; absent when there is none.
	MaxBlocks                int64   `json:"max_blocks,omitempty"`
	ReadHeaderTimeoutSeconds float64 `json:"read_header_timeout_seconds"`
	ReadTimeoutSeconds       float64 `json:"read_timeout_seconds"` // whole request, body included
	WriteTimeoutSeconds      float64 `json:"write_timeout_seconds"`
	IdleTimeoutSeconds       float64 `json:"idle_timeout_seconds"`
	// PoolWindowSeconds is how long a write may wait in the write pool
	// for others to be committed with it (0: none).
	PoolWindowSeconds float64 `json:"pool_window_seconds"`
}

func (a *api) config(x *exchange) {
	bk := a.svc.Bucketer()
	l := a.svc.Limits()
	c := Config{
		Version:          a.opt.Version,
		BlockSize:        a.svc.BlockSize(),
		PeriodSeconds:    int64(bk.PeriodDuration() / time.Second),
		RetentionPeriods: bk.Retention(),
		CurrentPeriod:    bk.Current(),
		Limits: ConfigLimits{
			RenewBatch:               l.RenewBatch,
			WriteBatch:               l.WriteBatch,
			MaxBatchRefs:             l.RenewBatch,
			MaxHeaderBytes:           a.opt.MaxHeaderBytes,
			MaxManifestBytes:         MaxManifestBytes,
			MaxBatchBodyBytes:        a.maxBatchBody(),
			MaxRenewBodyBytes:        a.maxRenewBody(),
			ReadHeaderTimeoutSeconds: a.opt.ReadHeaderTimeout.Seconds(),
			ReadTimeoutSeconds:       a.opt.ReadTimeout.Seconds(),
			WriteTimeoutSeconds:      a.opt.WriteTimeout.Seconds(),
			IdleTimeoutSeconds:       a.opt.IdleTimeout.Seconds(),
			PoolWindowSeconds:        a.opt.PoolWindow.Seconds(),
		},
	}
	if d, ok := a.probe.(ProbeLimitDescriber); ok {
		r, b := d.ProbeLimits()
		c.Limits.ProbeRatePerSecond, c.Limits.ProbeBurst = &r, &b
	}
	if a.opt.WriteLimit != nil && a.opt.Tokens == nil {
		r, b := a.opt.WriteLimit.WriteLimits()
		c.Limits.WriteRatePerSecond, c.Limits.WriteBurst = &r, &b
	}
	c.Limits.MaxBlocks = a.svc.MaxBlocks()
	c.Tokens = a.configTokens()
	writeJSON(x.w, http.StatusOK, c)
}

func (a *api) openapi(x *exchange) {
	h := x.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(openapiDoc)))
	x.w.WriteHeader(http.StatusOK)
	_, _ = x.w.Write(openapiDoc)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only this package's own response types get here; a failure is
		// a bug, and the panic handler answers 500.
		panic(fmt.Errorf("httpapi: marshal response: %w", err))
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
