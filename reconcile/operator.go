package reconcile

import (
	"fmt"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// This file keeps the controller from fighting the operator. A `docker
// stop` or `docker-compose down` announces itself with kill and stop
// events before the container leaves the running state, and a server that
// drains closes its listener at once: a probe in that window sees "down"
// on a container Docker still calls running. Acting on it restarts a
// container someone is stopping (autoheal#22, and seen here: a restart
// during `down` left the container running after it). Pure; see
// operator_test.go.

// Interventions tells the reconciler about container events it did not
// cause. *dockerwatch.Interventions implements it.
type Interventions interface {
	// StoppedByOther returns the latest stop of id by someone else after
	// since.
	StoppedByOther(id string, since time.Time) (dockerwatch.Intervention, bool)
	// LastEventAt returns the time of the newest event seen for id.
	LastEventAt(id string) time.Time
}

// downConfirmAfter is how long after a first "down" the second probe that
// confirms it is made; eventsQuiet is how long the container must have had
// no events before it. Both are short next to a stop's duration, which the
// events reveal within milliseconds.
const (
	downConfirmAfter = 2 * time.Second
	eventsQuiet      = time.Second
)

// OperatorFacts are what the guards need to know besides the plan.
type OperatorFacts struct {
	// Stop is the latest stop by someone else since the process started;
	// Stopping says whether there is one.
	Stop     dockerwatch.Intervention
	Stopping bool
	// LastEventAt is the newest event of the container, zero if none.
	LastEventAt time.Time
	// DownSeenAt is when the probe first saw "down" in this run of downs;
	// zero if the last probe did not.
	DownSeenAt time.Time
}

// GuardOperator checks a plan that acts against what others are doing.
// It drops the action of a plan for a container someone else is stopping
// (PlanStoodAside), and delays one on "down" until a second probe,
// downConfirmAfter later and after the events have been quiet for
// eventsQuiet, confirms it (PlanConfirmingDown, with RetryAt set).
func GuardOperator(plan Plan, observed probe.Level, f OperatorFacts, now time.Time) Plan {
	if plan.Action == ActionNone {
		return plan
	}
	if f.Stopping {
		plan.Action, plan.DryRun = ActionNone, false
		plan.set(PlanStoodAside, "stood aside: the container is being stopped by someone else (%s)", describeStop(f.Stop))
		return plan
	}
	if observed != probe.Down {
		return plan
	}
	confirmAt := now.Add(downConfirmAfter)
	if !f.DownSeenAt.IsZero() {
		confirmAt = f.DownSeenAt.Add(downConfirmAfter)
	}
	if quiet := f.LastEventAt.Add(eventsQuiet); quiet.After(confirmAt) {
		confirmAt = quiet
	}
	if f.DownSeenAt.IsZero() || now.Before(confirmAt) {
		plan.Action, plan.DryRun = ActionNone, false
		plan.set(PlanConfirmingDown, "down: confirming with a second probe once the container's events are quiet")
		plan.RetryAt = confirmAt
	}
	return plan
}

func describeStop(s dockerwatch.Intervention) string {
	what := s.Action
	if s.Action == "kill" && s.Signal != "" {
		what = "kill signal " + s.Signal
	}
	return fmt.Sprintf("%s at %s", what, s.At.UTC().Format(time.RFC3339Nano))
}

// operatorFacts gathers the guards' inputs for c.
func (r *ContainerReconciler) operatorFacts(c dockerwatch.Container, rec *state.Record) OperatorFacts {
	f := OperatorFacts{DownSeenAt: rec.Remediation.DownSeenAt}
	if r.Interventions != nil {
		f.Stop, f.Stopping = r.Interventions.StoppedByOther(c.ID, c.StartedAt)
		f.LastEventAt = r.Interventions.LastEventAt(c.ID)
	}
	return f
}

// noteGuard records what the guards saw in p.rec: the start of a run of
// "down" probes, and a stop stood aside for, logged once per stop.
func (r *ContainerReconciler) noteGuard(p *pass, s step) {
	rm := &p.rec.Remediation
	switch {
	case s.res.Level != probe.Down:
		rm.DownSeenAt = time.Time{}
	case rm.DownSeenAt.IsZero():
		rm.DownSeenAt = p.now
	}
	if s.plan.Code != PlanStoodAside {
		return
	}
	f := r.operatorFacts(p.c, &p.rec)
	if rm.StoodAsideFor.Equal(f.Stop.At) {
		return
	}
	rm.StoodAsideFor = f.Stop.At
	p.log.Info(fmt.Sprintf("%s: %s", p.service, s.plan.Message), keyReason, string(s.plan.Code))
}
