package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

func newIdentityGauge() *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "crank_security_identity_finding",
		Help: "1 while a container has the identity finding named by reason: identity-conflict (it claims another owner's identity and gets no bundle), label-from-image (an image-supplied crank.security label was ignored), alias-conflict (a name was left out of its certificate), owner-conflict (replicas need different key owners).",
	}, []string{"service", "container", "reason"})
}

// IdentityFindings implements reconcile.Metrics: the container's series
// are replaced by one per current finding, so a cleared finding reads as
// absent rather than stale.
func (m *metrics) IdentityFindings(service, container string, reasons []reconcile.IdentityReason) {
	m.identity.DeletePartialMatch(prometheus.Labels{"service": service, "container": container})
	for _, r := range reasons {
		m.identity.WithLabelValues(service, container, string(r)).Set(1)
	}
}
