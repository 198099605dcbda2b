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
	// ReloadGrace is how long after a bundle is written the controller
	// waits for a container that reloads by itself (Desired.ReloadWatch) to
	// show the new bundle before it falls back to the ladder.
	ReloadGrace time.Duration
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
	// ReloadWatch is set when the container reloads by itself when its
	// bundle changes (crank.security.reload=watch, the service kit): the
	// controller then waits for the probe to show the reload instead of
	// restarting, for up to Policy.ReloadGrace.
	ReloadWatch bool
	Budget      int
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
		if err := parseReload(v, &d); err != nil {
			return d, err
		}
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

// parseReload reads LabelReload: "watch", or "signal:<NAME>".
func parseReload(v string, d *Desired) error {
	v = strings.TrimSpace(v)
	if v == ReloadWatch {
		d.ReloadWatch = true
		return nil
	}
	sig, found := strings.CutPrefix(v, "signal:")
	if !found || !validSignal(sig) {
		return fmt.Errorf("label %s=%q: want watch, or signal:<NAME>, e.g. signal:SIGHUP", LabelReload, v)
	}
	d.ReloadSignal = sig
	return nil
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
	// BundleWrittenAt is when the container's current bundle was written.
	BundleWrittenAt time.Time
	Now             time.Time
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

func (p Policy) actionCause(d Desired, o Observation, drift bool) string {
	var parts []string
	if drift {
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

func (p Policy) degradedReason(d Desired, o Observation, why string) string {
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
