package reconcile

import (
	"fmt"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// PlanCode says why the ladder chose what it chose. Status, metrics and
// tests use the code; Plan.Message is for humans.
type PlanCode string

// Plan codes, in the order the ladder's steps are tried.
const (
	PlanRestarting        PlanCode = "restarting"         // Docker is restarting it
	PlanNotRunning        PlanCode = "not-running"        // stopped or never started: left alone
	PlanAtDesired         PlanCode = "at-desired"         // no drift, nothing stale
	PlanReportOnly        PlanCode = "report-only"        // on-drift=report
	PlanStartGrace        PlanCode = "start-grace"        // too soon after a start
	PlanAwaitingReload    PlanCode = "awaiting-reload"    // a reload=watch service has not shown its new bundle yet
	PlanAlreadyRelabelled PlanCode = "already-relabelled" // a replacement still showing the same drift
	PlanPhaseReload       PlanCode = "phase-reload"       // a CA rollover reload, on the phase's budget
	PlanRelabelBackoff    PlanCode = "relabel-backoff"    // budget spent, waiting before the relabel
	PlanRelabel           PlanCode = "relabel"            // budget spent, drift persists: recreate once
	PlanRelabelRolledBack PlanCode = "relabel-rolled-back"
	PlanBudgetSpent       PlanCode = "budget-spent"
	PlanBackoff           PlanCode = "backoff"   // waiting out the restart backoff
	PlanRemediate         PlanCode = "remediate" // restart, or the declared reload signal
	// Set by GuardOperator after the ladder.
	PlanStoodAside     PlanCode = "stood-aside"     // someone else is stopping it
	PlanConfirmingDown PlanCode = "confirming-down" // a second probe must confirm down
)

// Plan is the decision for one container.
type Plan struct {
	Action Action
	// Code says why; Message explains it to a human.
	Code    PlanCode
	Message string
	// Drift is observed < desired; BelowFloor is observed < floor.
	Drift, BelowFloor bool
	// Reload is a restart or signal needed to pick up new certificates,
	// whatever the level.
	Reload bool
	// Degraded is set when the ladder is exhausted (or reporting only) and
	// the drift stays: the reason shown in status.
	Degraded string
	// RetryAt is when to look again for an action that must wait (backoff,
	// start grace); zero when nothing waits.
	RetryAt time.Time
	// ResetBudget is set when the container is healthy again, which ends
	// the drift episode.
	ResetBudget bool
	// DryRun is set in observe mode: the action is logged, not taken.
	DryRun bool
	// PhaseReload says what the ladder made of a reload a CA rollover
	// phase asks for; PhaseReloadNow spends the phase reload of Phase.
	PhaseReload PhaseReload
	Phase       string
}

// ladderStep is one guard of the ladder: it completes plan and returns
// true when the decision is final, or returns false to pass it on.
type ladderStep func(p Policy, d Desired, o Observation, plan *Plan) bool

// ladder is the remediation ladder as an ordered chain, the way
// cert-manager orders its policy checks. Its guards against restart loops
// (autoheal#53, #22) come first: no action for a container that is not
// running, is restarting, is inside its start grace, is waiting out its
// backoff or has spent its budget. The one exception is a reload a CA
// rollover phase waits for, which has a budget of its own (phaseReload).
var ladder = []ladderStep{
	stepNotRunning, stepAtDesired, stepReportOnly, stepStartGrace, stepAwaitReload, stepAlreadyRelabelled,
	stepPhaseReload, stepBudgetSpent, stepBackoff, stepRemediate,
}

// Decide walks the remediation ladder for a container whose desired state
// is d, as observed in o.
func (p Policy) Decide(d Desired, o Observation) Plan {
	observed := o.Probe.Level
	plan := Plan{
		Drift:      observed.Rank() < d.Level.Rank(),
		BelowFloor: observed.Rank() < d.Floor.Rank(),
		Reload:     o.StaleProcess || hasReason(o.Probe, probe.ServedCertNotCurrent),
	}
	for _, step := range ladder {
		if step(p, d, o, &plan) {
			break
		}
	}
	return plan
}

func (plan *Plan) set(code PlanCode, format string, args ...any) {
	plan.Code, plan.Message = code, fmt.Sprintf(format, args...)
}

func stepNotRunning(_ Policy, _ Desired, o Observation, plan *Plan) bool {
	switch c := o.Container; c.State {
	case dockerwatch.StateRunning:
		return false
	case dockerwatch.StateRestarting:
		plan.set(PlanRestarting, "container is restarting")
	default:
		// Stopped by the user, or crashed and left to Docker's restart
		// policy: a stopped container stays stopped.
		plan.set(PlanNotRunning, "container is %s; never started by the controller", c.State)
	}
	return true
}

func stepAtDesired(_ Policy, _ Desired, o Observation, plan *Plan) bool {
	if plan.Drift || plan.Reload {
		return false
	}
	plan.ResetBudget = o.Attempts > 0 || o.Relabels > 0 || !o.NextActionAt.IsZero()
	plan.set(PlanAtDesired, "at desired level")
	return true
}

func stepReportOnly(p Policy, d Desired, o Observation, plan *Plan) bool {
	if d.OnDrift != OnDriftReport {
		return false
	}
	plan.set(PlanReportOnly, "on-drift=report: reporting only")
	if plan.Reload && o.Rollover.Waits {
		plan.PhaseReload = PhaseReloadReportOnly
		plan.Message += "; the CA rollover waits for this process to reload its new bundle: restart it by hand"
	}
	plan.Degraded = p.degradedReason(d, o, "on-drift=report")
	return true
}

func stepStartGrace(p Policy, _ Desired, o Observation, plan *Plan) bool {
	grace := p.graceEnd(o.Container)
	if !o.Now.Before(grace) {
		return false
	}
	plan.set(PlanStartGrace, "inside the start grace period")
	plan.RetryAt = grace
	return true
}

// reloadPoll is how often a service that reloads by itself is probed
// while the controller waits for the reload to show.
const reloadPoll = time.Second

// stepAwaitReload gives a service that reloads by itself its grace: while
// its process has not shown the bundle written last, the ladder waits and
// probes again, and falls back to a restart only once ReloadGrace passed.
func stepAwaitReload(p Policy, d Desired, o Observation, plan *Plan) bool {
	if !d.ReloadWatch || !o.StaleProcess {
		return false
	}
	deadline := o.BundleWrittenAt.Add(p.ReloadGrace)
	if !o.Now.Before(deadline) {
		return false
	}
	plan.set(PlanAwaitingReload, "waiting for the service to load its new bundle by itself (reload=watch), until %s",
		deadline.UTC().Format(time.RFC3339))
	plan.RetryAt = earlier(o.Now.Add(reloadPoll), deadline)
	return true
}

func stepAlreadyRelabelled(p Policy, d Desired, o Observation, plan *Plan) bool {
	c := o.Container
	if !relabelled(c) || c.Labels[LabelObserved] != string(o.Probe.Level) || plan.Reload {
		return false
	}
	plan.set(PlanAlreadyRelabelled, "already relabelled for this drift")
	plan.Degraded = p.degradedReason(d, o, "relabelled")
	return true
}

// stepBudgetSpent is the ladder once the restart budget is spent: one
// relabel when asked for, else degraded. A container that already carries
// the relabel labels is never relabelled again, whatever the reason: its
// replacement starts with a fresh record and budget, so without this a
// drift that a recreate cannot fix (a service serving its own cert)
// recreates it forever. One relabel per episode: a failed one (rolled
// back) is not retried, and it waits out the backoff like any action.
func stepBudgetSpent(p Policy, d Desired, o Observation, plan *Plan) bool {
	if o.Attempts < d.Budget {
		return false
	}
	relabel := d.OnDrift == OnDriftRelabel && !relabelled(o.Container)
	switch {
	case relabel && o.Relabels == 0 && o.Now.Before(o.NextActionAt):
		plan.set(PlanRelabelBackoff, "waiting out the backoff before relabelling")
		plan.RetryAt = o.NextActionAt
		return true
	case relabel && o.Relabels == 0:
		plan.Action = ActionRelabel
		plan.set(PlanRelabel, "restart budget (%d) spent and drift persists", d.Budget)
		plan.DryRun = p.Mode == Observe
		return true
	case relabel:
		plan.set(PlanRelabelRolledBack, "relabel already tried and rolled back")
	default:
		plan.set(PlanBudgetSpent, "restart budget (%d) spent", d.Budget)
	}
	plan.Degraded = p.degradedReason(d, o, plan.Message)
	plan.Message += phaseReloadNote(o, *plan)
	return true
}

func stepBackoff(_ Policy, _ Desired, o Observation, plan *Plan) bool {
	if !o.Now.Before(o.NextActionAt) {
		return false
	}
	plan.set(PlanBackoff, "waiting out the restart backoff")
	plan.RetryAt = o.NextActionAt
	return true
}

func stepRemediate(p Policy, d Desired, o Observation, plan *Plan) bool {
	plan.Action = reloadAction(d)
	plan.set(PlanRemediate, "%s", p.actionCause(d, o, plan.Drift))
	plan.DryRun = p.Mode == Observe
	return true
}
