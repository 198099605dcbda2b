package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// rolloverMetrics holds the CA rollover's collectors. It implements
// rotation.Metrics, so that package never imports Prometheus.
type rolloverMetrics struct {
	// crank_security_ca_rollover_stalled_services{reason}: services that
	// have blocked the current rollover phase longer than the stall
	// threshold (a few probe intervals plus their turn in the global
	// action limit), by what they lack (rotation.WaitReasons). Alert on
	// sum > 0: a phase that stalls does not finish by itself.
	stalled *prometheus.GaugeVec
}

func newRolloverMetrics(reg prometheus.Registerer) *rolloverMetrics {
	m := &rolloverMetrics{
		stalled: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crank_security_ca_rollover_stalled_services",
			Help: "Services blocking the current CA rollover phase longer than a few probe intervals, by what they lack (e.g. process-older-than-bundle, refused-new-ca-client-cert).",
		}, []string{"reason"}),
	}
	for _, r := range rotation.WaitReasons() {
		m.stalled.WithLabelValues(string(r))
	}
	reg.MustRegister(m.stalled)
	return m
}

// RolloverStalled implements rotation.Metrics: every known reason is set,
// so one that cleared reads zero, not its last value.
func (m *rolloverMetrics) RolloverStalled(byLack map[rotation.WaitReason]int) {
	for _, r := range rotation.WaitReasons() {
		m.stalled.WithLabelValues(string(r)).Set(float64(byLack[r]))
	}
}
