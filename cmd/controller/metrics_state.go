package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// newInfoGauge creates crank_security_info, the controller's own settings
// for alert rules to join on.
func newInfoGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crank_security_info",
		Help: "Always 1; the labels are the controller's environment, mode and version, for alert rules to join on.",
	}, []string{"environment", "mode", "version"})
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
