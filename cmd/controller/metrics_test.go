package main

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

// Every metric must pass promlint (naming, units, help) and carry the
// crank_security_ prefix.
func TestMetricsLint(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	// Touch the vectors that have no pre-created series so they are gathered.
	m.Observed(reconcile.Observed{Service: "platform", Container: "crank-platform-1", Level: probe.MTLS, Desired: probe.MTLS, Took: time.Millisecond})
	m.Expiry("platform", "server", time.Now())
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "crank_security_") && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("got metric %s, want the crank_security_ prefix", name)
		}
	}
	var _ []promlint.Problem = problems
}

// Label series are pre-created so dashboards show zeros, not gaps.
func TestMetricsPrecreated(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	for name, want := range map[string]int{
		"crank_security_reconcile_total":      4,
		"crank_security_docker_events_total":  7,
		"crank_security_remediations_total":   12,
		"crank_security_bundles_issued_total": 11,
	} {
		if got := testutil.CollectAndCount(reg, name); got != want {
			t.Errorf("got %d series of %s, want %d pre-created", got, name, want)
		}
	}
}

// Mapping documented in the README: down 0, plain 1, tls 2, mtls 3.
func TestLevelGaugeMapping(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	svc := map[string]string{"service": "svc", "container": "c"}
	for lvl, want := range map[probe.Level]float64{probe.Down: 0, probe.Plain: 1, probe.TLS: 2, probe.MTLS: 3} {
		m.Observed(reconcile.Observed{Service: "svc", Container: "c", Level: lvl, Desired: probe.MTLS, Drift: lvl != probe.MTLS})
		if got := gaugeValue(t, reg, "crank_security_level", svc); got != want {
			t.Errorf("got %v for %s, want %v", got, lvl, want)
		}
		wantDrift := 0.0
		if lvl != probe.MTLS {
			wantDrift = 1
		}
		if got := gaugeValue(t, reg, "crank_security_drift", svc); got != wantDrift {
			t.Errorf("got drift %v for %s, want %v", got, lvl, wantDrift)
		}
	}
	m.Forget("svc", "c")
	if got := testutil.CollectAndCount(reg, "crank_security_level"); got != 0 {
		t.Errorf("got %d level series after Forget, want 0", got)
	}
}

// gaugeValue returns the value of the one series of name with labels,
// failing the test unless there is exactly one.
func gaugeValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gathering: %v", err)
	}
	var found []float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			if maps.Equal(have, labels) {
				found = append(found, m.GetGauge().GetValue())
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("got %d series %s%v, want 1", len(found), name, labels)
	}
	return found[0]
}

// A service's certificate series follow its reports and go with
// ForgetService; the CA's stay.
func TestCertificateSeriesFollowTheService(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	m.Expiry("", "ca", at.AddDate(10, 0, 0))
	m.Expiry("svc", "server", at)
	m.Expiry("svc", "server", at.Add(time.Hour)) // replaces, never adds
	m.Expiry("svc", "client", at)
	m.Expiry("svc", "served", time.Time{}) // nothing served yet: no series
	m.Renewal("svc", time.Time{}, at.Add(-time.Hour))
	checks := []struct {
		name   string
		labels map[string]string
		want   time.Time
	}{
		{"crank_security_certificate_expiry_timestamp_seconds", map[string]string{"service": "svc", "kind": "server"}, at.Add(time.Hour)},
		{"crank_security_certificate_expiry_timestamp_seconds", map[string]string{"service": "svc", "kind": "client"}, at},
		{"crank_security_certificate_renewal_timestamp_seconds", map[string]string{"service": "svc", "when": "next"}, at.Add(-time.Hour)},
	}
	for _, c := range checks {
		if got := gaugeValue(t, reg, c.name, c.labels); got != float64(c.want.Unix()) {
			t.Errorf("%s%v: got %v, want %v", c.name, c.labels, got, c.want.Unix())
		}
	}
	for name, want := range map[string]int{"crank_security_certificate_expiry_timestamp_seconds": 3, "crank_security_certificate_renewal_timestamp_seconds": 1} {
		if got := testutil.CollectAndCount(reg, name); got != want {
			t.Errorf("got %d series of %s, want %d (no when=last before a renewal, no served before a probe)", got, name, want)
		}
	}
	m.ForgetService("svc")
	if got := testutil.CollectAndCount(reg, "crank_security_certificate_renewal_timestamp_seconds"); got != 0 {
		t.Errorf("got %d renewal series after ForgetService, want 0", got)
	}
	if got := gaugeValue(t, reg, "crank_security_certificate_expiry_timestamp_seconds", map[string]string{"service": "", "kind": "ca"}); got != float64(at.AddDate(10, 0, 0).Unix()) {
		t.Errorf("CA expiry after ForgetService: got %v, want it kept", got)
	}
	if got := testutil.CollectAndCount(reg, "crank_security_certificate_expiry_timestamp_seconds"); got != 1 {
		t.Errorf("got %d expiry series after ForgetService, want the CA's alone", got)
	}
}

// A reconcile's duration carries its reconcile ID as an exemplar, the same
// ID as its log lines.
func TestReconcileDurationCarriesTheReconcileID(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.ReconcileDone(reconcile.OutcomeSuccess, 3*time.Millisecond, "0badcafe")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "crank_security_reconcile_duration_seconds" {
			continue
		}
		for _, b := range mf.GetMetric()[0].GetHistogram().GetBucket() {
			if ex := b.GetExemplar(); ex != nil {
				if got := ex.GetLabel()[0].GetValue(); got != "0badcafe" {
					t.Errorf("exemplar reconcile_id: got %q, want 0badcafe", got)
				}
				return
			}
		}
	}
	t.Error("reconcile duration: got no exemplar, want one with the reconcile ID")
}

// The gauges alert rules key on follow each probe, and a forgotten
// container's series go.
func TestMetricsFollowFloorAndDegradation(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.Observed(reconcile.Observed{Service: "svc", Container: "c", Level: probe.Plain, Desired: probe.MTLS,
		Drift: true, BelowFloor: true, Degraded: true})
	for _, name := range []string{"crank_security_below_floor", "crank_security_degraded"} {
		if got := gaugeValue(t, reg, name, map[string]string{"service": "svc", "container": "c"}); got != 1 {
			t.Errorf("%s: got %v, want 1", name, got)
		}
	}
	m.Forget("svc", "c")
	if got := testutil.CollectAndCount(reg, "crank_security_degraded"); got != 0 {
		t.Errorf("degraded series after Forget: got %d, want 0", got)
	}
	m.setInfo(Config{Environment: reconcile.Production, Mode: reconcile.Enforce})
	if got := testutil.ToFloat64(m.info.WithLabelValues("production", "enforce", version())); got != 1 {
		t.Errorf("info: got %v, want 1", got)
	}
}
