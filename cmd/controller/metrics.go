package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

// metrics holds every Prometheus collector the controller exports. It
// implements the small Metrics interfaces that dockerwatch and reconcile
// declare, so those packages never import Prometheus.
type metrics struct {
	// crank_security_reconcile_duration_seconds: wall time of one reconcile.
	reconcileDuration prometheus.Histogram
	// crank_security_reconcile_total{result}: reconciles by outcome
	// (reconcile.ResultLabels()).
	reconcileTotal *prometheus.CounterVec
	// crank_security_reconcile_panics_total: panics recovered in a reconcile.
	panics prometheus.Counter
	// crank_security_docker_events_total{action}: container events received.
	events *prometheus.CounterVec
	// crank_security_docker_stream_reconnects_total: event stream
	// (re)connections after the first, whatever ended the previous one.
	reconnects prometheus.Counter
	// crank_security_bundles_issued_total{reason}: bundles issued, by the
	// validation reason that required it (missing, renew-due, ...).
	bundlesIssued *prometheus.CounterVec
}

// Known label values, pre-created so dashboards show zeros, not gaps.
var (
	eventActions = []string{"create", "start", "die", "destroy", "health_status"}
	issueReasons = []certs.Reason{
		certs.ReasonMissing, certs.ReasonCorrupt, certs.ReasonKeyMismatch, certs.ReasonWrongCA,
		certs.ReasonSANMismatch, certs.ReasonExpired, certs.ReasonNotYetValid, certs.ReasonRenewDue,
		certs.ReasonWrongIssuer, certs.ReasonWrongUsage,
	}
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reconcileDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "crank_security_reconcile_duration_seconds",
			Help:    "Wall time of one reconcile of one container.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
		}),
		reconcileTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crank_security_reconcile_total",
			Help: "Reconciles by result: success, requeue_after (scheduled again), error (retried with backoff; includes panics), terminal (not retried).",
		}, []string{"result"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crank_security_reconcile_panics_total",
			Help: "Panics recovered inside a reconcile; each is also counted as an error.",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crank_security_docker_events_total",
			Help: "Container events received from the Docker event stream, by action.",
		}, []string{"action"}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "crank_security_docker_stream_reconnects_total",
			Help: "Reconnections of the Docker event stream after the first connection.",
		}),
		bundlesIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "crank_security_bundles_issued_total",
			Help: "Bundles (server and client pair) issued, by the validation reason that required them.",
		}, []string{"reason"}),
	}
	for _, r := range reconcile.ResultLabels() {
		m.reconcileTotal.WithLabelValues(r)
	}
	for _, a := range eventActions {
		m.events.WithLabelValues(a)
	}
	for _, r := range issueReasons {
		m.bundlesIssued.WithLabelValues(string(r))
	}
	reg.MustRegister(m.reconcileDuration, m.reconcileTotal, m.panics, m.events, m.reconnects, m.bundlesIssued,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// ReconcileDone implements reconcile.ControllerMetrics.
func (m *metrics) ReconcileDone(result string, d time.Duration) {
	m.reconcileDuration.Observe(d.Seconds())
	m.reconcileTotal.WithLabelValues(result).Inc()
}

// Panic implements reconcile.ControllerMetrics.
func (m *metrics) Panic() { m.panics.Inc() }

// Event implements dockerwatch.WatchMetrics.
func (m *metrics) Event(action string) {
	// health_status events arrive as "health_status: healthy"; keep the
	// label set bounded.
	if len(action) > len("health_status") && action[:len("health_status")] == "health_status" {
		action = "health_status"
	}
	m.events.WithLabelValues(action).Inc()
}

// Reconnect implements dockerwatch.WatchMetrics.
func (m *metrics) Reconnect() { m.reconnects.Inc() }

// BundleIssued implements reconcile.Metrics.
func (m *metrics) BundleIssued(reason string) { m.bundlesIssued.WithLabelValues(reason).Inc() }
