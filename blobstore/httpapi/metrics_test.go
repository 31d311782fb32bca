package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// scrape renders reg in the text exposition format.
func scrape(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// metricValue returns the value of the sample whose name and labels are
// exactly line's, or -1.
func metricValue(text, series string) float64 {
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`)
	m := re.FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// The metrics count requests by method, route pattern and status, and
// hold nothing a client sent: no id, proof, ETag, address, path or
// method of its own invention.
func TestMetricsCountByRouteAndNameNothing(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *envConfig) {
		c.opt.Metrics = m
		c.opt.TrustProxyHeader = "X-Forwarded-For"
	})
	from := hdr{"X-Forwarded-For", "203.0.113.77"}
	e.secret("203.0.113.77")

	a, b := e.newBlock(), e.newBlock()
	e.mustPut(a)
	e.mustPut(b)
	e.do("GET", "/v1/blocks/"+a.id, nil, from).wantStatus(t, http.StatusOK)
	e.do("HEAD", "/v1/blocks/"+b.id, nil, from).wantStatus(t, http.StatusOK)
	for range 3 {
		e.do("GET", "/v1/blocks/"+e.newBlock().id, nil, from).wantStatus(t, http.StatusNotFound)
	}
	renew, _ := json.Marshal(entry{"blocks": []entry{{"id": a.id, "proof": a.renew}}})
	e.do("POST", "/v1/renew", renew, hdr{"Content-Type", "application/json"}).wantStatus(t, http.StatusOK)
	c := e.newBlock()
	e.do("POST", "/v1/blocks", batchBody(t, entry{"blocks": []entry{{"id": c.id, "proof": c.proof}}}, c.data),
		hdr{"Content-Type", "application/vnd.blindstore.batch"}).wantStatus(t, http.StatusOK)
	e.do("DELETE", "/v1/blocks/"+b.id, nil, hdr{"Blind-Proof", a.proof}).wantStatus(t, http.StatusForbidden)
	// A method and a path of the client's own: neither may become a label.
	e.do("FROBNICATE", "/v1/blocks/"+a.id, nil, nil).wantStatus(t, http.StatusMethodNotAllowed)
	e.do("GET", "/secret-path-"+c.id, nil, nil).wantStatus(t, http.StatusNotFound)

	text := scrape(t, reg)
	for series, want := range map[string]float64{
		`blindstore_http_requests_total{code="201",method="PUT",route="/v1/blocks/:id"}`:      2,
		`blindstore_http_requests_total{code="200",method="GET",route="/v1/blocks/:id"}`:      1,
		`blindstore_http_requests_total{code="404",method="GET",route="/v1/blocks/:id"}`:      3,
		`blindstore_http_requests_total{code="200",method="HEAD",route="/v1/blocks/:id"}`:     1,
		`blindstore_http_requests_total{code="200",method="POST",route="/v1/renew"}`:          1,
		`blindstore_http_requests_total{code="200",method="POST",route="/v1/blocks"}`:         1,
		`blindstore_http_requests_total{code="403",method="DELETE",route="/v1/blocks/:id"}`:   1,
		`blindstore_http_requests_total{code="405",method="other",route="no_route"}`:          1,
		`blindstore_http_requests_total{code="404",method="GET",route="no_route"}`:            1,
		`blindstore_http_request_duration_seconds_count{method="GET",route="/v1/blocks/:id"}`: 4,
		`blindstore_http_requests_in_flight`:                                                  0,
	} {
		if got := metricValue(text, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	lower := strings.ToLower(text)
	e.mu.Lock()
	secrets := append([]string{"127.0.0.1", "frobnicate", "secret-path"}, e.secrets...)
	e.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(lower, strings.ToLower(s)) {
			t.Errorf("metrics hold %q:\n%s", s, text)
		}
	}
}

func TestMetricsRegisterOnce(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Fatal("a second set of the same metrics registered without error")
	}
	var nilMetrics *Metrics
	nilMetrics.ConnState(nil, http.StateNew) // a server without metrics
	nilMetrics.begin()("GET", "/healthz", 200, 0)
}
