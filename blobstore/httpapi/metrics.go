package httpapi

import (
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the API's Prometheus metrics: requests counted by method,
// route pattern and status, their latency, and the open connections.
//
// Every label value comes from a closed set the server chooses (the route
// table's patterns, five methods and "other", the statuses the API
// answers), never from the request: no path, no id, no header value, no
// address. A label taken from the request would let any client write
// what it likes into the operator's monitoring, and grow it without
// bound.
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
	conns    prometheus.Gauge
	// series caches each label combination's counter and histogram:
	// WithLabelValues validates, hashes and looks up its labels under a
	// lock on every call, and the label sets are few and fixed.
	series sync.Map // seriesKey → *series
}

type seriesKey struct {
	method, route string
	status        int
}

type series struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// NewMetrics creates the API's metrics and registers them with reg. Give
// the same Metrics to Options.Metrics and, for the connection gauge, its
// ConnState to the http.Server.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "blindstore_http_requests_total",
			Help: "HTTP requests answered, by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "blindstore_http_request_duration_seconds",
			Help: "Time from a request's headers to the end of its answer, by method and route pattern. Writes include the write pool's window.",
			// 1 ms to about 33 s: reads take a millisecond, writes wait
			// for the pool's window (250 ms by default) and a commit.
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}, []string{"method", "route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blindstore_http_requests_in_flight",
			Help: "Requests being handled now.",
		}),
		conns: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "blindstore_http_connections_open",
			Help: "Client connections open now, idle ones included (set through Metrics.ConnState).",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight, m.conns} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// ConnState counts open connections; set it as the http.Server's
// ConnState. It never looks at the connection's address.
func (m *Metrics) ConnState(_ net.Conn, s http.ConnState) {
	if m == nil {
		return
	}
	switch s {
	case http.StateNew:
		m.conns.Inc()
	case http.StateClosed, http.StateHijacked:
		m.conns.Dec()
	}
}

// begin counts a request in flight; the returned function records it
// once answered. Both are no-ops on a nil Metrics.
func (m *Metrics) begin() func(method, route string, status int, d time.Duration) {
	if m == nil {
		return func(string, string, int, time.Duration) {}
	}
	m.inFlight.Inc()
	return func(method, route string, status int, d time.Duration) {
		m.inFlight.Dec()
		s := m.seriesOf(seriesKey{methodLabel(method), route, status})
		s.requests.Inc()
		s.duration.Observe(d.Seconds())
	}
}

func (m *Metrics) seriesOf(k seriesKey) *series {
	if s, ok := m.series.Load(k); ok {
		return s.(*series)
	}
	s := &series{
		requests: m.requests.WithLabelValues(k.method, k.route, strconv.Itoa(k.status)),
		duration: m.duration.WithLabelValues(k.method, k.route),
	}
	// Two first requests may both build it: the vectors hand both the
	// same children, so either copy counts alike.
	v, _ := m.series.LoadOrStore(k, s)
	return v.(*series)
}

// methodLabel maps a request's method onto the few the API serves: the
// method is the client's to choose, and a label must not be.
func methodLabel(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete:
		return m
	}
	return "other"
}

// observe records one answered request of the series.
func (s *series) observe(d time.Duration) {
	s.requests.Inc()
	s.duration.Observe(d.Seconds())
}
