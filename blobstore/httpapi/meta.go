package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/blindstore/blindstore/wire"
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
		x.fail(a, wire.Wrap(wire.KindUnavailable, wire.CodeUnavailable, "not ready", err))
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

// Config and ConfigLimits are the body of GET /v1/config (wire's).
type (
	Config       = wire.Config
	ConfigLimits = wire.ConfigLimits
)

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
			ReadBatch:                a.svc.ReadBatch(),
			MaxReadBodyBytes:         a.maxReadBody(),
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
