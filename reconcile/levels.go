package reconcile

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// This file decides, from plain inputs, what security a container should
// have and what to do about the difference. Pure; see levels_test.go.

// Environment names the deployment environment, which sets the floor.
type Environment string

// Environments.
const (
	Development Environment = "development"
	Production  Environment = "production"
)

// Mode is the global rollback switch.
type Mode string

// Modes.
const (
	// Enforce acts on containers (restart, signal, relabel).
	Enforce Mode = "enforce"
	// Observe decides and logs every action it would take and changes no
	// container. Bundles in the volume are still maintained, because
	// services need valid certificates whatever the controller's mode.
	Observe Mode = "observe"
)

// OnDrift is a container's chosen response to drift.
type OnDrift string

// Responses to drift.
const (
	OnDriftRestart OnDrift = "restart"
	OnDriftRelabel OnDrift = "relabel"
	OnDriftReport  OnDrift = "report"
)

// Policy is the global part of the level decision.
type Policy struct {
	Environment Environment
	Mode        Mode
	// ProductionMinimum is the lowest level production accepts; a label
	// cannot take a container below it.
	ProductionMinimum probe.Level
	// RestartBudget is how many restarts (or reload signals) one container
	// gets for one drift episode before it is reported degraded.
	RestartBudget int
	// BackoffBase and BackoffMax space the restarts of one container:
	// base, 2*base, 4*base ... capped.
	BackoffBase, BackoffMax time.Duration
	// StartGrace is how long after a start the controller waits before
	// acting, so a process can bind its ports (the healthcheck start period
	// is honoured when it is longer).
	StartGrace time.Duration
	// Quarantine are labels added on relabel, e.g. traefik.enable=false.
	Quarantine map[string]string
}

// Desired is a container's wanted level and how to get there.
type Desired struct {
	Level   probe.Level // what the container should serve
	Floor   probe.Level // the lowest level accepted without alarm
	OnDrift OnDrift
	// ReloadSignal is set when the container declared a reload signal.
	ReloadSignal string
	Budget       int
}

// DesiredFor reads c's labels under the policy. Bad label values are errors
// naming the label, so the container is reported, never half-managed.
func (p Policy) DesiredFor(c dockerwatch.Container) (Desired, error) {
	d := Desired{Level: probe.MTLS, OnDrift: OnDriftRestart, Budget: p.RestartBudget}
	if v, ok := c.Labels[LabelLevel]; ok {
		l, err := probe.ParseLevel(v)
		if err != nil || l == probe.Down {
			return d, fmt.Errorf("label %s=%q: want mtls, tls or plain", LabelLevel, v)
		}
		d.Level = l
	}
	if v, ok := c.Labels[LabelOnDrift]; ok {
		switch o := OnDrift(strings.ToLower(strings.TrimSpace(v))); o {
		case OnDriftRestart, OnDriftRelabel, OnDriftReport:
			d.OnDrift = o
		default:
			return d, fmt.Errorf("label %s=%q: want restart, relabel or report", LabelOnDrift, v)
		}
	}
	if v, ok := c.Labels[LabelReload]; ok {
		sig, found := strings.CutPrefix(strings.TrimSpace(v), "signal:")
		if !found || !validSignal(sig) {
			return d, fmt.Errorf("label %s=%q: want signal:<NAME>, e.g. signal:SIGHUP", LabelReload, v)
		}
		d.ReloadSignal = sig
	}
	if v, ok := c.Labels[LabelRestartBudget]; ok {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 || n > 100 {
			return d, fmt.Errorf("label %s=%q: want a number 0-100", LabelRestartBudget, v)
		}
		d.Budget = n
	}
	switch p.Environment {
	case Production:
		if d.Level.Rank() < p.ProductionMinimum.Rank() {
			d.Level = p.ProductionMinimum
		}
		d.Floor = d.Level
	default:
		d.Floor = probe.Plain
	}
	return d, nil
}

func validSignal(s string) bool {
	if !strings.HasPrefix(s, "SIG") || len(s) < 5 || len(s) > 12 {
		return false
	}
	for _, r := range s[3:] {
		if (r < 'A' || r > 'Z') && (r < '0' || r > '9') && r != '+' && r != '-' {
			return false
		}
	}
	return true
}

// Action is a remediation step on a container.
type Action string

// Actions, in ladder order.
const (
	ActionNone    Action = ""
	ActionSignal  Action = "signal"
	ActionRestart Action = "restart"
	ActionRelabel Action = "relabel"
)

// Observation is everything the decision needs about one container now.
type Observation struct {
	Container dockerwatch.Container
	Probe     probe.Result
	// StaleProcess: the process started before its bundle was written.
	StaleProcess bool
	// Attempts and NextActionAt are the remediation state of this drift
	// episode, from the state store.
	Attempts     int
	NextActionAt time.Time
	// Relabels made in this episode (at most one is ever tried).
	Relabels int
	// Rollover is what a CA rollover in progress needs of this process
	// (zero when none is in progress).
	Rollover RolloverNeed
	// PhaseReloadedIn is the rollover phase in which this container last
	// had its phase reload.
	PhaseReloadedIn string
	Now             time.Time
}

// Plan is the decision for one container.
type Plan struct {
	Action Action
	// Reason explains the action, or why nothing is done.
	Reason string
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

// Decide walks the remediation ladder. It never chooses an action for a
// container that is not running, is restarting, is inside its start grace,
// is waiting out its backoff, or has spent its budget: the guards against
// restart loops (autoheal#53, #22) are here, in one testable place. The
// one exception is a reload that a CA rollover phase waits for, which has
// a budget of its own (phaseReload).
func (p Policy) Decide(d Desired, o Observation) Plan {
	observed := o.Probe.Level
	plan := Plan{
		Drift:      observed.Rank() < d.Level.Rank(),
		BelowFloor: observed.Rank() < d.Floor.Rank(),
		Reload:     o.StaleProcess || hasReason(o.Probe, probe.ServedCertNotCurrent),
	}
	c := o.Container
	switch {
	case c.State == dockerwatch.StateRestarting:
		plan.Reason = "container is restarting"
		return plan
	case c.State != dockerwatch.StateRunning:
		// Stopped by the user, or crashed and left to Docker's restart
		// policy: a stopped container stays stopped.
		plan.Reason = fmt.Sprintf("container is %s; never started by the controller", c.State)
		return plan
	}
	if !plan.Drift && !plan.Reload {
		plan.ResetBudget = o.Attempts > 0 || o.Relabels > 0 || !o.NextActionAt.IsZero()
		plan.Reason = "at desired level"
		return plan
	}
	if d.OnDrift == OnDriftReport {
		plan.Reason = "on-drift=report: reporting only"
		if plan.Reload && o.Rollover.Waits {
			plan.PhaseReload = PhaseReloadReportOnly
			plan.Reason += "; the CA rollover waits for this process to reload its new bundle: restart it by hand"
		}
		plan.Degraded = p.degradedReason(d, o, plan, "on-drift=report")
		return plan
	}
	if grace := p.graceEnd(c); o.Now.Before(grace) {
		plan.Reason = "inside the start grace period"
		plan.RetryAt = grace
		return plan
	}
	if relabelled(c) && c.Labels[LabelObserved] == string(observed) && !plan.Reload {
		plan.Reason = "already relabelled for this drift"
		plan.Degraded = p.degradedReason(d, o, plan, "relabelled")
		return plan
	}
	if p.phaseReload(d, o, &plan) {
		return plan
	}
	if o.Attempts >= d.Budget {
		return p.budgetSpent(d, o, plan)
	}
	if o.Now.Before(o.NextActionAt) {
		plan.Reason = "waiting out the restart backoff"
		plan.RetryAt = o.NextActionAt
		return plan
	}
	plan.Action = reloadAction(d)
	plan.Reason = p.actionCause(d, o, plan)
	plan.DryRun = p.Mode == Observe
	return plan
}

// budgetSpent is the ladder once the restart budget is spent: one relabel
// when asked for, else degraded.
func (p Policy) budgetSpent(d Desired, o Observation, plan Plan) Plan {
	// A container that already carries the relabel labels is never
	// relabelled again, whatever the reason: its replacement starts with
	// a fresh record and budget, so without this a drift that a recreate
	// cannot fix (a service serving its own cert) recreates it forever.
	// One relabel per episode: a failed one (rolled back) is not
	// retried, and it waits out the backoff like any action.
	c := o.Container
	switch {
	case d.OnDrift == OnDriftRelabel && !relabelled(c) && o.Relabels == 0 && o.Now.Before(o.NextActionAt):
		plan.Reason = "waiting out the backoff before relabelling"
		plan.RetryAt = o.NextActionAt
		return plan
	case d.OnDrift == OnDriftRelabel && !relabelled(c) && o.Relabels == 0:
		plan.Action = ActionRelabel
		plan.Reason = fmt.Sprintf("restart budget (%d) spent and drift persists", d.Budget)
		plan.DryRun = p.Mode == Observe
		return plan
	case d.OnDrift == OnDriftRelabel && o.Relabels > 0 && !relabelled(c):
		plan.Reason = "relabel already tried and rolled back"
	default:
		plan.Reason = fmt.Sprintf("restart budget (%d) spent", d.Budget)
	}
	plan.Degraded = p.degradedReason(d, o, plan, plan.Reason)
	plan.Reason += phaseReloadNote(o, plan)
	return plan
}

// Backoff returns the wait after the n-th action (n >= 1) of an episode.
func (p Policy) Backoff(n int) time.Duration {
	d := p.BackoffBase
	for i := 1; i < n && d < p.BackoffMax; i++ {
		d *= 2
	}
	return min(d, p.BackoffMax)
}

func (p Policy) graceEnd(c dockerwatch.Container) time.Time {
	return c.StartedAt.Add(max(p.StartGrace, c.HealthStartPeriod))
}

func (p Policy) actionCause(d Desired, o Observation, plan Plan) string {
	var parts []string
	if plan.Drift {
		parts = append(parts, fmt.Sprintf("observed %s < desired %s", o.Probe.Level, d.Level))
	}
	if o.StaleProcess {
		parts = append(parts, "bundle newer than the process")
	}
	if hasReason(o.Probe, probe.ServedCertNotCurrent) {
		parts = append(parts, string(probe.ServedCertNotCurrent))
	}
	if rs := o.Probe.Reasons(); len(rs) > 0 {
		parts = append(parts, "findings "+joinReasons(rs))
	}
	return strings.Join(parts, "; ")
}

func (p Policy) degradedReason(d Desired, o Observation, plan Plan, why string) string {
	s := fmt.Sprintf("observed %s, desired %s (%s)", o.Probe.Level, d.Level, why)
	if rs := o.Probe.Reasons(); len(rs) > 0 {
		s += ": " + joinReasons(rs)
	}
	return s
}

// relabelled reports whether c is a replacement made by a relabel.
func relabelled(c dockerwatch.Container) bool {
	return c.Labels[LabelObserved] != "" && c.Labels[LabelDrift] != ""
}

func hasReason(r probe.Result, want probe.Reason) bool {
	for _, f := range r.Findings {
		if f.Reason == want {
			return true
		}
	}
	return false
}

func joinReasons(rs []probe.Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, ",")
}
