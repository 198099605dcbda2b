package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/crank-platform/crank-mtls-controller/rotation"
)

func TestRolloverMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := newRolloverMetrics(reg)
	const name = "crank_security_ca_rollover_stalled_services"
	if got, want := testutil.CollectAndCount(reg, name), len(rotation.WaitReasons()); got != want {
		t.Errorf("got %d series of %s, want %d pre-created (one per reason)", got, name, want)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	stale := m.stalled.WithLabelValues(string(rotation.WaitProcessStale))
	m.RolloverStalled(map[rotation.WaitReason]int{rotation.WaitProcessStale: 2})
	if got := testutil.ToFloat64(stale); got != 2 {
		t.Errorf("got %v stalled for %s, want 2", got, rotation.WaitProcessStale)
	}
	m.RolloverStalled(nil)
	if got := testutil.ToFloat64(stale); got != 0 {
		t.Errorf("got %v after the stall cleared, want 0", got)
	}
}
