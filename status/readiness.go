package status

import (
	"fmt"
	"strings"

	"github.com/crank-platform/crank-mtls-controller/probe"
)

// This file judges containers against the production floor before the
// switch: what `controller status --as production`, the dashboard and the
// API's "production" fields say. Pure; see readiness_test.go.
//
// Production lifts a crank.security.level label below --production-min-level
// to that minimum and makes the result the floor (reconcile.Policy's
// DesiredFor). So a container's production floor is the higher of its
// recorded desired level and the minimum: in development the recorded
// desired level is the label's, and in production it is already lifted.

// ReadinessCode says why a container would not meet the production floor,
// or what production would change about it. Codes are stable strings:
// scripts and alerts match them, never the messages.
type ReadinessCode string

// Readiness codes, in the order the checks run.
const (
	// ReadinessIdentityRefused (blocking): the container claims an
	// identity another owner holds, so it gets no bundle in any
	// environment.
	ReadinessIdentityRefused ReadinessCode = "identity-refused"
	// ReadinessNotObserved (blocking): the container was never probed, so
	// nothing shows it would meet the floor.
	ReadinessNotObserved ReadinessCode = "not-observed"
	// ReadinessDown (blocking): nothing answered the last probe.
	ReadinessDown ReadinessCode = "down"
	// ReadinessBelowDesired (blocking): the container already serves less
	// than its own desired level (it drifted), and less than the
	// production floor.
	ReadinessBelowDesired ReadinessCode = "below-desired"
	// ReadinessLabelBelowMinimum (blocking): the container serves what its
	// label asks, but the label asks less than the production minimum,
	// and production would lift it to a level it does not serve.
	ReadinessLabelBelowMinimum ReadinessCode = "label-below-minimum"
	// ReadinessLabelLifted (not blocking): the label asks less than the
	// production minimum; production lifts it, and the container already
	// serves the minimum.
	ReadinessLabelLifted ReadinessCode = "label-lifted"
)

// ReadinessInput is what the production judgement needs of one container.
type ReadinessInput struct {
	// Observed is the last observed level: mtls, tls, plain, down, or
	// unknown ("" too) when never probed.
	Observed string
	// Desired is the recorded desired level: the label's (or the default
	// mtls) in development, already lifted in production; "" before the
	// first probe.
	Desired string
	// Minimum is --production-min-level; "" means probe.MTLS, its default.
	Minimum probe.Level
	// IdentityRefused is set when the container claims an identity another
	// owner holds.
	IdentityRefused bool
	// ProbeFindings are the last probe's reason codes, quoted in messages
	// to say why a level falls short.
	ProbeFindings []string
}

// readinessCheck is one check: a code and message when it has something to
// say (code "" otherwise), and whether that blocks production.
type readinessCheck func(in ReadinessInput, floor probe.Level) (code ReadinessCode, message string, blocking bool)

// readinessChecks run in this order; every one runs, so a container shows
// all its reasons at once.
var readinessChecks = []readinessCheck{checkIdentity, checkObserved, checkLevel, checkLifted}

// JudgeProduction judges one container, as observed now, against the
// production floor.
func JudgeProduction(in ReadinessInput) Readiness {
	floor := ProductionFloor(in.Desired, in.Minimum)
	r := Readiness{Floor: string(floor), Ready: true, Findings: []ReadinessFinding{}}
	for _, check := range readinessChecks {
		code, msg, blocking := check(in, floor)
		if code == "" {
			continue
		}
		r.Findings = append(r.Findings, ReadinessFinding{Code: code, Message: msg, Blocking: blocking})
		if blocking {
			r.Ready = false
		}
	}
	return r
}

// ProductionFloor is the level production requires of a container whose
// recorded desired level is desired: the higher of it and minimum.
func ProductionFloor(desired string, minimum probe.Level) probe.Level {
	minimum = productionMinimum(minimum)
	if d := probe.Level(desired); d.Rank() > minimum.Rank() {
		return d
	}
	return minimum
}

// productionMinimum defaults an unset minimum to the flag's default. Down is
// never a floor (the flag refuses it); it is treated as unset too.
func productionMinimum(m probe.Level) probe.Level {
	if m.Rank() < probe.Plain.Rank() {
		return probe.MTLS
	}
	return m
}

func checkIdentity(in ReadinessInput, _ probe.Level) (ReadinessCode, string, bool) {
	if !in.IdentityRefused {
		return "", "", false
	}
	return ReadinessIdentityRefused, "claims an identity another owner holds: it gets no bundle in any environment", true
}

func checkObserved(in ReadinessInput, floor probe.Level) (ReadinessCode, string, bool) {
	if observedLevel(in.Observed).Rank() >= 0 {
		return "", "", false
	}
	return ReadinessNotObserved, fmt.Sprintf("never probed: nothing shows it would serve %s", floor), true
}

func checkLevel(in ReadinessInput, floor probe.Level) (ReadinessCode, string, bool) {
	obs := observedLevel(in.Observed)
	if obs.Rank() < 0 || obs.Rank() >= floor.Rank() {
		return "", "", false
	}
	why := findingsNote(in.ProbeFindings)
	switch desired := probe.Level(in.Desired); {
	case obs == probe.Down:
		return ReadinessDown, fmt.Sprintf("down%s: production requires %s", why, floor), true
	case obs.Rank() < desired.Rank():
		return ReadinessBelowDesired, fmt.Sprintf("serves %s%s, below its desired %s; production requires %s", obs, why, desired, floor), true
	default:
		return ReadinessLabelBelowMinimum, fmt.Sprintf("serves %s%s as its label asks; production lifts it to %s", obs, why, floor), true
	}
}

func checkLifted(in ReadinessInput, floor probe.Level) (ReadinessCode, string, bool) {
	desired, obs := probe.Level(in.Desired), observedLevel(in.Observed)
	if desired.Rank() < 0 || desired.Rank() >= floor.Rank() || obs.Rank() < floor.Rank() {
		return "", "", false
	}
	return ReadinessLabelLifted, fmt.Sprintf("label asks for %s; production lifts it to %s, which it already serves", desired, floor), false
}

// observedLevel is the observed level, or "" (rank -1) when unknown.
func observedLevel(s string) probe.Level {
	l := probe.Level(s)
	if l.Rank() < 0 {
		return ""
	}
	return l
}

func findingsNote(fs []string) string {
	if len(fs) == 0 {
		return ""
	}
	return " (" + strings.Join(fs, ", ") + ")"
}

// verdict sums up judged containers.
func verdict(minimum probe.Level, rs []Readiness) ProductionVerdict {
	v := ProductionVerdict{Minimum: string(productionMinimum(minimum)), Total: len(rs), Blocking: map[string]int{}}
	for _, r := range rs {
		if r.Ready {
			v.Ready++
		}
		// Each check has its own code, so a code appears once per container.
		for _, f := range r.Findings {
			if f.Blocking {
				v.Blocking[string(f.Code)]++
			}
		}
	}
	v.Verdict = fmt.Sprintf("ready for production: %d/%d", v.Ready, v.Total)
	return v
}
