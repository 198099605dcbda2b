package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// newStateGauges creates the gauges alert rules key on: below the floor,
// degraded, and the controller's own settings.
func newStateGauges() (belowFloor, degraded, info *prometheus.GaugeVec) {
	belowFloor = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crank_security_below_floor",
		Help: "1 while the observed level is below the floor (in production the floor is the desired level; in development it is plain), else 0.",
	}, []string{"service", "container"})
	degraded = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crank_security_degraded",
		Help: "1 while the remediation ladder has given up (budget spent, already relabelled, or on-drift=report) on a drift or a reload the container still needs, else 0.",
	}, []string{"service", "container"})
	info = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crank_security_info",
		Help: "Always 1; the labels are the controller's environment, mode and version, for alert rules to join on.",
	}, []string{"environment", "mode", "version"})
	return belowFloor, degraded, info
}

// setInfo records the controller's settings in crank_security_info.
func (m *metrics) setInfo(cfg Config) {
	m.info.WithLabelValues(string(cfg.Environment), string(cfg.Mode), version()).Set(1)
}

// trackStream exports whether the Docker event stream is connected and the
// initial list done, the same test /readyz makes.
func (m *metrics) trackStream(reg prometheus.Registerer, ready readiness) {
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "crank_security_docker_stream_connected",
		Help: "1 while the Docker event stream is connected and every container has been listed since (what /readyz reports), else 0.",
	}, func() float64 { return oneIf(ready.Ready()) }))
}
