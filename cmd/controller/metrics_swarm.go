package main

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/swarm"
)

// swarmMetrics implements swarm.Metrics.
type swarmMetrics struct {
	base *metrics // crank_security_bundles_issued_total is shared with compose mode
	// crank_security_swarm_tasks{service,node,level}: running tasks of a
	// service (by identity) on a node, by the level the last probe saw.
	tasks *prometheus.GaugeVec
	// crank_security_swarm_service_updates_total{kind,result}: service
	// updates by kind (rollout, restart, relabel) and result (ok, error,
	// dry-run, rate-limited).
	updates *prometheus.CounterVec

	mu   sync.Mutex
	seen map[string][]swarm.NodeLevel // series set per identity, to reset them
}

func newSwarmMetrics(reg prometheus.Registerer, base *metrics) *swarmMetrics {
	m := &swarmMetrics{
		base: base,
		tasks: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "crank_security_swarm_tasks",
			Help: "Running tasks of a swarm service (by identity) on a node, by the security level the last probe observed.",
		}, []string{"service", "node", "level"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crank_security_swarm_service_updates_total",
			Help: "Swarm service updates the controller made: rollout (new bundle generation), restart (forced update) or relabel, by result.",
		}, []string{"kind", "result"}),
		seen: map[string][]swarm.NodeLevel{},
	}
	for _, k := range []string{swarm.UpdateRollout, swarm.UpdateRestart, swarm.UpdateRelabel} {
		for _, r := range []string{swarm.ResultOK, swarm.ResultError, swarm.ResultDryRun, swarm.ResultRateLimited} {
			m.updates.WithLabelValues(k, r)
		}
	}
	reg.MustRegister(m.tasks, m.updates)
	return m
}

func (m *swarmMetrics) BundleIssued(reason string) { m.base.BundleIssued(reason) }

func (m *swarmMetrics) ServiceUpdate(kind, result string) {
	m.updates.WithLabelValues(kind, result).Inc()
}

// Tasks sets one identity's series, every level present on a node at 0
// when no task serves it, so a level that empties shows 0, not a gap.
func (m *swarmMetrics) Tasks(identity string, byNodeLevel map[swarm.NodeLevel]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, nl := range m.seen[identity] {
		m.tasks.WithLabelValues(identity, nl.Node, nl.Level).Set(0)
	}
	nodes := map[string]bool{}
	for nl := range byNodeLevel {
		nodes[nl.Node] = true
	}
	var set []swarm.NodeLevel
	for node := range nodes {
		for _, l := range []probe.Level{probe.Down, probe.Plain, probe.TLS, probe.MTLS} {
			nl := swarm.NodeLevel{Node: node, Level: string(l)}
			m.tasks.WithLabelValues(identity, node, string(l)).Set(float64(byNodeLevel[nl]))
			set = append(set, nl)
		}
	}
	m.seen[identity] = append(m.seen[identity][:0], set...)
}

func (m *swarmMetrics) Forget(identity string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tasks.DeletePartialMatch(prometheus.Labels{"service": identity})
	delete(m.seen, identity)
}
