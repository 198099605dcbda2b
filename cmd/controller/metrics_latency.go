package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Values of the from label of crank_security_event_to_bundle_seconds.
const (
	latencyFromEvent   = "event"   // the engine's event time: its delay included
	latencyFromReceipt = "receipt" // when the controller received it: its own
)

func newLatencyHistogram() *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crank_security_event_to_bundle_seconds",
		Help:    "Time from a new container's create event to its first bundle on disk: from=event counts from the engine's own event time (the engine's delay included), from=receipt from when the controller received the event (the controller's own share).",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	}, []string{"from"})
	h.WithLabelValues(latencyFromEvent)
	h.WithLabelValues(latencyFromReceipt)
	return h
}

// BundleLatency implements reconcile.Metrics.
func (m *metrics) BundleLatency(fromEvent, fromReceipt time.Duration) {
	m.bundleLatency.WithLabelValues(latencyFromEvent).Observe(fromEvent.Seconds())
	m.bundleLatency.WithLabelValues(latencyFromReceipt).Observe(fromReceipt.Seconds())
}
