package main

import (
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
	for lvl, want := range map[probe.Level]float64{probe.Down: 0, probe.Plain: 1, probe.TLS: 2, probe.MTLS: 3} {
		m.Observed(reconcile.Observed{Service: "svc", Container: "c", Level: lvl, Desired: probe.MTLS, Drift: lvl != probe.MTLS})
		if got := testutil.ToFloat64(m.level.WithLabelValues("svc", "c")); got != want {
			t.Errorf("got %v for %s, want %v", got, lvl, want)
		}
		wantDrift := 0.0
		if lvl != probe.MTLS {
			wantDrift = 1
		}
		if got := testutil.ToFloat64(m.drift.WithLabelValues("svc", "c")); got != wantDrift {
			t.Errorf("got drift %v for %s, want %v", got, lvl, wantDrift)
		}
	}
	m.Forget("svc", "c")
	if got := testutil.CollectAndCount(reg, "crank_security_level"); got != 0 {
		t.Errorf("got %d level series after Forget, want 0", got)
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
	m := newMetrics(prometheus.NewRegistry())
	m.Observed(reconcile.Observed{Service: "svc", Container: "c", Level: probe.Plain, Desired: probe.MTLS,
		Drift: true, BelowFloor: true, Degraded: true})
	for name, g := range map[string]*prometheus.GaugeVec{"below_floor": m.belowFloor, "degraded": m.degraded} {
		if got := testutil.ToFloat64(g.WithLabelValues("svc", "c")); got != 1 {
			t.Errorf("%s: got %v, want 1", name, got)
		}
	}
	m.Forget("svc", "c")
	if got := testutil.CollectAndCount(m.degraded); got != 0 {
		t.Errorf("degraded series after Forget: got %d, want 0", got)
	}
	m.setInfo(Config{Environment: reconcile.Production, Mode: reconcile.Enforce})
	if got := testutil.ToFloat64(m.info.WithLabelValues("production", "enforce", version())); got != 1 {
		t.Errorf("info: got %v, want 1", got)
	}
}
