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

// latencyBuckets resolve the figures operators hold this latency to (50 ms
// on an idle engine, 250 ms in a start storm) exactly, with a 1-2-5 series
// from 1 ms to 10 s around them.
var latencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10}

func newLatencyHistogram() *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "crank_security_event_to_bundle_seconds",
		Help:    "Time from a new container's create event to its first bundle on disk: from=event counts from the engine's own event time (the engine's delay included), from=receipt from when the controller received the event (the controller's own share).",
		Buckets: latencyBuckets,
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
