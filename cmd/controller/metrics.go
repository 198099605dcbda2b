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
	// (reconcile.Outcomes()).
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
	// table holds the series there is one of per container or per
	// service: crank_security_level, _desired_level, _drift, _below_floor,
	// _degraded, _certificate_expiry_timestamp_seconds and
	// _certificate_renewal_timestamp_seconds (levelTable's descs say what
	// each means).
	table *levelTable
	// crank_security_probe_duration_seconds: wall time of one probe (all
	// three steps).
	probeDuration prometheus.Histogram
	// crank_security_remediations_total{action,result}: container actions
	// (restart, signal, relabel) by result (ok, error, dry-run,
	// rate-limited).
	remediations *prometheus.CounterVec
	// crank_security_identity_finding{service,container,reason}: 1 while
	// a container has that identity finding (identity-conflict,
	// label-from-image, alias-conflict, owner-conflict).
	identity *prometheus.GaugeVec
	// crank_security_event_to_bundle_seconds{from}: a new container's
	// create event to its first bundle on disk.
	bundleLatency *prometheus.HistogramVec
	// crank_security_info{environment,mode,version}: always 1.
	info *prometheus.GaugeVec
}

// Known label values, pre-created so dashboards show zeros, not gaps.
var (
	eventActions = []string{"create", "start", "kill", "stop", "die", "destroy", "health_status"}
	issueReasons = []certs.Reason{
		certs.ReasonMissing, certs.ReasonCorrupt, certs.ReasonKeyMismatch, certs.ReasonWrongCA,
		certs.ReasonSANMismatch, certs.ReasonExpired, certs.ReasonNotYetValid, certs.ReasonRenewDue,
		certs.ReasonWrongIssuer, certs.ReasonWrongUsage, certs.ReasonUnsafeFile,
	}
)

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{}
	m.initPipeline()
	m.initLevels()
	m.identity = newIdentityGauge()
	m.bundleLatency = newLatencyHistogram()
	m.table = newLevelTable()
	m.info = newInfoGauge()
	for _, a := range []reconcile.Action{reconcile.ActionRestart, reconcile.ActionSignal, reconcile.ActionRelabel} {
		for _, r := range reconcile.ActionResults() {
			m.remediations.WithLabelValues(string(a), string(r))
		}
	}
	for _, o := range reconcile.Outcomes() {
		m.reconcileTotal.WithLabelValues(string(o))
	}
	for _, a := range eventActions {
		m.events.WithLabelValues(a)
	}
	for _, r := range issueReasons {
		m.bundlesIssued.WithLabelValues(string(r))
	}
	reg.MustRegister(m.reconcileDuration, m.reconcileTotal, m.panics, m.events, m.reconnects, m.bundlesIssued,
		m.table, m.probeDuration, m.remediations, m.identity, m.bundleLatency, m.info,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// initPipeline creates the collectors of the event-to-bundle pipeline:
// reconciles, events, reconnects and issuances.
func (m *metrics) initPipeline() {
	m.reconcileDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "crank_security_reconcile_duration_seconds",
		Help:    "Wall time of one reconcile of one container.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	})
	m.reconcileTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crank_security_reconcile_total",
		Help: "Reconciles by result: success, requeue_after (scheduled again), error (retried with backoff; includes panics), terminal (not retried).",
	}, []string{"result"})
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crank_security_reconcile_panics_total",
		Help: "Panics recovered inside a reconcile; each is also counted as an error.",
	})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crank_security_docker_events_total",
		Help: "Container events received from the Docker event stream, by action.",
	}, []string{"action"})
	m.reconnects = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "crank_security_docker_stream_reconnects_total",
		Help: "Reconnections of the Docker event stream after the first connection.",
	})
	m.bundlesIssued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crank_security_bundles_issued_total",
		Help: "Bundles (server and client pair) issued, by the validation reason that required them.",
	}, []string{"reason"})
}

// initLevels creates the collectors of what containers serve and of
// their certificates.
func (m *metrics) initLevels() {
	m.probeDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "crank_security_probe_duration_seconds",
		Help:    "Wall time of one probe of one container (HTTPS with and without client cert, then HTTP).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	})
	m.remediations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "crank_security_remediations_total",
		Help: "Container actions by action (restart, signal, relabel) and result (ok, error, dry-run, rate-limited).",
	}, []string{"action", "result"})
}

// ReconcileDone implements reconcile.ControllerMetrics. The duration
// carries the reconcile ID as an exemplar, so a slow bucket leads to the
// reconcile's log lines.
func (m *metrics) ReconcileDone(o reconcile.Outcome, d time.Duration, reconcileID string) {
	if eo, ok := m.reconcileDuration.(prometheus.ExemplarObserver); ok && reconcileID != "" {
		eo.ObserveWithExemplar(d.Seconds(), prometheus.Labels{"reconcile_id": reconcileID})
	} else {
		m.reconcileDuration.Observe(d.Seconds())
	}
	m.reconcileTotal.WithLabelValues(string(o)).Inc()
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

// Observed implements reconcile.Metrics.
func (m *metrics) Observed(o reconcile.Observed) {
	m.table.observed(o)
	if o.Took > 0 {
		m.probeDuration.Observe(o.Took.Seconds())
	}
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Remediated implements reconcile.Metrics.
func (m *metrics) Remediated(action, result string) {
	m.remediations.WithLabelValues(action, result).Inc()
}

// Forget implements reconcile.Metrics: a destroyed container's series go.
func (m *metrics) Forget(service, container string) {
	m.table.forget(service, container)
	m.identity.DeletePartialMatch(prometheus.Labels{"service": service, "container": container})
}

// Expiry implements reconcile.Metrics: the NotAfter of a service's leaves.
func (m *metrics) Expiry(service, kind string, notAfter time.Time) {
	if notAfter.IsZero() {
		return
	}
	m.table.expiry(service, kind, notAfter)
}

// Renewal implements reconcile.Metrics.
func (m *metrics) Renewal(service string, last, next time.Time) {
	m.table.renewal(service, last, next)
}

// ForgetService implements reconcile.Metrics: the certificate series of a
// service whose last container is gone go.
func (m *metrics) ForgetService(service string) { m.table.forgetService(service) }
