package main

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

// levelTable holds the series there is one of per container or per
// service: each container's levels and each service's certificate times.
// It keeps them as plain values and writes them out at scrape time, as a
// state exporter does, rather than as a GaugeVec child per series: a
// thousand containers made ten thousand children, a third of the
// controller's live heap. A series exists exactly while its row does, so
// a gone container's or service's series go with it.
type levelTable struct {
	mu         sync.Mutex
	containers map[containerKey]levelRow
	services   map[string]*serviceTimes
}

type containerKey struct{ service, container string }

// levelRow is one probe's figures, as the gauges show them.
type levelRow struct {
	level, desired              int8
	drift, belowFloor, degraded bool
}

// serviceTimes are a service's certificate times as Unix seconds, 0 for
// none yet.
type serviceTimes struct {
	expiry     []kindTime // one per kind: server, client, served, ca
	last, next int64
}

type kindTime struct {
	kind string
	at   int64
}

// The families levelTable writes; the README lists them.
var (
	containerLabels = []string{"service", "container"}
	levelDesc       = prometheus.NewDesc("crank_security_level",
		"Observed security level: 0 down, 1 plain, 2 tls, 3 mtls.", containerLabels, nil)
	desiredLevelDesc = prometheus.NewDesc("crank_security_desired_level",
		"Desired security level: 0 down, 1 plain, 2 tls, 3 mtls.", containerLabels, nil)
	driftDesc = prometheus.NewDesc("crank_security_drift",
		"1 while the observed level is below the desired level, else 0.", containerLabels, nil)
	belowFloorDesc = prometheus.NewDesc("crank_security_below_floor",
		"1 while the observed level is below the floor (in production the floor is the desired level; in development it is plain), else 0.", containerLabels, nil)
	degradedDesc = prometheus.NewDesc("crank_security_degraded",
		"1 while the remediation ladder has given up (budget spent, already relabelled, or on-drift=report) on a drift or a reload the container still needs, else 0.", containerLabels, nil)
	expiryDesc = prometheus.NewDesc("crank_security_certificate_expiry_timestamp_seconds",
		"NotAfter as Unix time, by service and kind: server, client, served (the leaf the service serves now) and ca (service empty).", []string{"service", "kind"}, nil)
	renewalDesc = prometheus.NewDesc("crank_security_certificate_renewal_timestamp_seconds",
		"Last (when=last) and next scheduled (when=next) renewal of a service's bundle, as Unix time.", []string{"service", "when"}, nil)
)

func newLevelTable() *levelTable {
	return &levelTable{containers: map[containerKey]levelRow{}, services: map[string]*serviceTimes{}}
}

// Describe implements prometheus.Collector.
func (t *levelTable) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{levelDesc, desiredLevelDesc, driftDesc, belowFloorDesc, degradedDesc, expiryDesc, renewalDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. It copies the rows under the
// lock and builds the series outside it, so a scrape never holds up a
// reconcile for longer than a copy.
func (t *levelTable) Collect(ch chan<- prometheus.Metric) {
	containers, services := t.snapshot()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	for k, r := range containers {
		gauge(levelDesc, float64(r.level), k.service, k.container)
		gauge(desiredLevelDesc, float64(r.desired), k.service, k.container)
		gauge(driftDesc, oneIf(r.drift), k.service, k.container)
		gauge(belowFloorDesc, oneIf(r.belowFloor), k.service, k.container)
		gauge(degradedDesc, oneIf(r.degraded), k.service, k.container)
	}
	for service, st := range services {
		for _, e := range st.expiry {
			gauge(expiryDesc, float64(e.at), service, e.kind)
		}
		if st.last != 0 {
			gauge(renewalDesc, float64(st.last), service, "last")
		}
		if st.next != 0 {
			gauge(renewalDesc, float64(st.next), service, "next")
		}
	}
}

func (t *levelTable) snapshot() (map[containerKey]levelRow, map[string]serviceTimes) {
	t.mu.Lock()
	defer t.mu.Unlock()
	services := make(map[string]serviceTimes, len(t.services))
	for s, st := range t.services {
		services[s] = serviceTimes{expiry: slices.Clone(st.expiry), last: st.last, next: st.next}
	}
	return maps.Clone(t.containers), services
}

func (t *levelTable) observed(o reconcile.Observed) {
	row := levelRow{level: int8(o.Level.Rank()), desired: int8(o.Desired.Rank()),
		drift: o.Drift, belowFloor: o.BelowFloor, degraded: o.Degraded}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.containers[containerKey{o.Service, o.Container}] = row
}

func (t *levelTable) forget(service, container string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.containers, containerKey{service, container})
}

func (t *levelTable) forgetService(service string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.services, service)
}

// service returns service's times, creating them; t.mu is held.
func (t *levelTable) service(service string) *serviceTimes {
	st, ok := t.services[service]
	if !ok {
		st = &serviceTimes{}
		t.services[service] = st
	}
	return st
}

func (t *levelTable) expiry(service, kind string, notAfter time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.service(service)
	for i := range st.expiry {
		if st.expiry[i].kind == kind {
			st.expiry[i].at = notAfter.Unix()
			return
		}
	}
	st.expiry = append(st.expiry, kindTime{kind, notAfter.Unix()})
}

func (t *levelTable) renewal(service string, last, next time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.service(service)
	if !last.IsZero() {
		st.last = last.Unix()
	}
	if !next.IsZero() {
		st.next = next.Unix()
	}
}
