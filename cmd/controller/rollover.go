package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/rotation"
	"github.com/crank-platform/crank-mtls-controller/status"
)

// wireRollover connects the CA rollover to the reconciler and to metrics.
// The ladder asks the rotation what a phase needs of a process (the same
// judgement the phase waits on), so a reload the phase waits for gets its
// own budget. Stalls are measured against the cadence the reconciler
// really has: a few probe intervals and a start grace, plus one action
// interval per waited-for service.
func wireRollover(rec *reconcile.ContainerReconciler, rot *rotation.Rotator, cfg Config, reg prometheus.Registerer) {
	rot.StallAfter = 3*cfg.ProbeInterval + cfg.StartGrace
	rot.ActionInterval = cfg.ActionInterval
	rot.Production = cfg.Environment == reconcile.Production
	rot.Metrics = newRolloverMetrics(reg)
	rec.RolloverNeed = func(observed probe.Level, findings []probe.Reason) reconcile.RolloverNeed {
		n := rot.ReloadNeed(observed, findings)
		return reconcile.RolloverNeed{Phase: n.Phase, Waits: n.Waits, NotWaited: string(n.Skip), Message: n.Message}
	}
}

// rolloverWaiting is the status API's view of the services a phase waits
// for.
func rolloverWaiting(bs []rotation.Blocker) []status.RolloverMember {
	var out []status.RolloverMember
	for _, b := range bs {
		out = append(out, status.RolloverMember{Service: b.Service, Container: b.Container, Reason: string(b.Lacks),
			Message: b.Message, Since: b.Since, Stalled: b.Stalled})
	}
	return out
}

// rolloverNotWaited is the status API's view of the containers a phase
// does not wait for.
func rolloverNotWaited(ks []rotation.Skipped) []status.RolloverMember {
	var out []status.RolloverMember
	for _, k := range ks {
		out = append(out, status.RolloverMember{Service: k.Service, Container: k.Container, Reason: string(k.Reason), Message: k.Message})
	}
	return out
}
