package reconcile

import (
	"fmt"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// This file holds the CA rollover's side of the ladder: a reload that a
// rollover phase waits for is not a drift episode, so it has a budget of
// its own, one per container and phase. Without it a degraded container
// whose drift budget is spent would never load the new CA, and the phase
// would wait for it for good.

// RolloverNeed is what a CA rollover in progress needs of one process, as
// the rotation judges it from what the probe saw (rotation.ReloadNeed).
type RolloverNeed struct {
	// Phase names the phase in progress, unique per rollover; "" when no
	// rollover is in progress.
	Phase string
	// Waits: the phase waits for this process to load its new bundle.
	Waits bool
	// NotWaited is the rotation's code for why it does not (Waits false),
	// and Message explains it.
	NotWaited string
	Message   string
}

// PhaseReload is what the ladder made of a reload a rollover phase asks
// for. The codes are stable: status and tests use them.
type PhaseReload string

// Phase reload outcomes.
const (
	// PhaseReloadNone: no rollover phase in progress, or nothing stale.
	PhaseReloadNone PhaseReload = ""
	// PhaseReloadNow: reload now, on the phase's budget.
	PhaseReloadNow PhaseReload = "phase-reload"
	// PhaseReloadSpent: this container already had its reload in this
	// phase; anything more is up to the drift ladder.
	PhaseReloadSpent PhaseReload = "phase-reload-spent"
	// PhaseReloadNotWaited: the phase does not wait for this process (it
	// cannot refuse the new CA), so the drift ladder alone decides.
	PhaseReloadNotWaited PhaseReload = "phase-not-waiting"
	// PhaseReloadReportOnly: the phase waits, but on-drift=report forbids
	// every action.
	PhaseReloadReportOnly PhaseReload = "phase-reload-report-only"
)

// stepPhaseReload takes the rollover reload when the phase waits for this
// stale process and its reload of this phase is unspent. It ignores the
// drift budget and backoff, not the start grace (checked before) nor the
// global action limit (applied when acting). It reports whether plan is
// final; otherwise it may leave a code saying why no phase reload is made.
func stepPhaseReload(p Policy, d Desired, o Observation, plan *Plan) bool {
	n := o.Rollover
	switch {
	case n.Phase == "" || !plan.Reload:
		return false
	case !n.Waits:
		plan.PhaseReload = PhaseReloadNotWaited
		return false
	case o.PhaseReloadedIn == n.Phase:
		plan.PhaseReload = PhaseReloadSpent
		return false
	}
	plan.PhaseReload, plan.Phase = PhaseReloadNow, n.Phase
	plan.Action = reloadAction(d)
	plan.set(PlanPhaseReload, "CA rollover reload (phase %s, once per phase; the drift budget is not touched): %s", n.Phase, p.actionCause(d, o, plan.Drift))
	plan.DryRun = p.Mode == Observe
	return true
}

// phaseReloadNote completes the reason of a plan that takes no action on
// a stale process during a rollover: what a reload would give, and why
// the controller will not make it.
func phaseReloadNote(o Observation, plan Plan) string {
	switch plan.PhaseReload {
	case PhaseReloadNotWaited:
		return fmt.Sprintf("; a restart would load its new bundle (CA rollover phase %s), but the phase does not wait for it (%s: %s), so no rollover reload is made",
			o.Rollover.Phase, o.Rollover.NotWaited, o.Rollover.Message)
	case PhaseReloadSpent:
		return fmt.Sprintf("; the CA rollover (phase %s) still waits for a restart that loads its new bundle, but its one rollover reload of this phase is spent: restart it by hand",
			o.Rollover.Phase)
	}
	return ""
}

// reloadAction is how d reloads: its declared signal, else a restart.
func reloadAction(d Desired) Action {
	if d.ReloadSignal != "" {
		return ActionSignal
	}
	return ActionRestart
}

// rolloverNeed asks the rotation, when wired, what the rollover in
// progress needs of the process that served res.
func (r *ContainerReconciler) rolloverNeed(res probe.Result) RolloverNeed {
	if r.RolloverNeed == nil {
		return RolloverNeed{}
	}
	return r.RolloverNeed(res.Level, res.Reasons())
}

// spend books plan's action in rm: a phase reload on the phase's budget,
// a relabel on its own count, anything else on the drift episode.
func spend(rm *state.RemediationState, plan Plan) {
	switch {
	case plan.Action == ActionRelabel:
		rm.Relabels++
	case plan.PhaseReload == PhaseReloadNow:
		rm.PhaseReload = plan.Phase
	default:
		rm.Attempts++
	}
}

// attemptNote is how the log line of an action counts it.
func attemptNote(plan Plan, attempts, budget int) string {
	if plan.PhaseReload == PhaseReloadNow {
		return "CA rollover reload, once per phase"
	}
	return fmt.Sprintf("attempt %d of %d", attempts, budget)
}
