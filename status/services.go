package status

import (
	"time"

	"github.com/crank-platform/crank-mtls-controller/probe"
)

// services rolls cs (sorted by service) up per service. Pure.
func services(cs []ContainerStatus, now time.Time) []ServiceStatus {
	out := []ServiceStatus{}
	for start := 0; start < len(cs); {
		end := start + 1
		for end < len(cs) && cs[end].Service == cs[start].Service {
			end++
		}
		out = append(out, service(cs[start:end], now))
		start = end
	}
	return out
}

func service(cs []ContainerStatus, now time.Time) ServiceStatus {
	s := ServiceStatus{Service: cs[0].Service, Containers: len(cs), Observed: LevelUnknown}
	tls := make([][]Span, 0, len(cs))
	for _, c := range cs {
		if l := probe.Level(c.Observed); l.Rank() >= 0 && (s.Observed == LevelUnknown || l.Rank() < probe.Level(s.Observed).Rank()) {
			s.Observed = c.Observed
		}
		s.Drift += b2i(c.Drift)
		s.BelowFloor += b2i(c.BelowFloor)
		s.Degraded += b2i(c.Remediation.Degraded != "")
		s.ProductionReady += b2i(c.Production.Ready)
		tls = append(tls, c.Timeline)
		e := &s.Expiry
		e.BundleNotAfter = earliest(e.BundleNotAfter, c.Bundle.NotAfter)
		e.RenewAt = earliest(e.RenewAt, c.Bundle.RenewAt)
		e.ServedNotAfter = earliest(e.ServedNotAfter, c.Served.NotAfter)
		if !c.Served.NotAfter.IsZero() && c.Served.NotAfter.Before(c.Bundle.NotAfter) {
			e.ServesOlder++
		}
	}
	s.Timeline = worstTimeline(tls)
	s.Expiry.DaysLeft = daysLeft(s.Expiry.BundleNotAfter, now)
	s.Expiry.ServedDaysLeft = daysLeft(s.Expiry.ServedNotAfter, now)
	return s
}

// earliest is the earlier of two times, a zero time meaning "none".
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
