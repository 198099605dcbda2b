package rotation

import (
	"fmt"
	"github.com/crank-platform/crank-mtls-controller/certs"
	"time"
)

// Phase is where a CA rollover is.
type Phase string

// Phases, in order. Retire is an action, not a phase: it ends the rollover.
const (
	PhaseIdle    Phase = "idle"    // one CA; nothing in progress
	PhaseOverlap Phase = "overlap" // successor created, in every trust bundle, not issuing
	PhaseReissue Phase = "reissue" // successor promoted; old CA still trusted until Retire
)

// Triggers: why a rollover started.
const (
	TriggerManual    = "manual"    // `controller ca rotate`
	TriggerAutomatic = "automatic" // the CA passed --ca-rotate-fraction of its lifetime
	TriggerExpired   = "expired"   // the CA had expired: recovered without overlap
	TriggerResumed   = "resumed"   // found in the CA files without matching meta
	TriggerImport    = "import"    // `controller ca import` (or `ca rotate --to-cert`) named the successor
)

// MetaKey is the state store meta key of the rollover.
const MetaKey = "ca_rollover"

// Meta is the rollover's persisted progress. The CA files decide which
// phase we are in (ReconcileMeta); Meta remembers when it began and how far
// it got, for the timeout, the status and the logs.
type Meta struct {
	Phase   Phase  `json:"phase"`
	Trigger string `json:"trigger,omitempty"`
	// StartedAt is when the rollover (the overlap) started.
	StartedAt time.Time `json:"started_at,omitzero"`
	// PhaseSince is when the current phase started; the timeout counts
	// from it.
	PhaseSince time.Time `json:"phase_since,omitzero"`
	// Successor is the SHA-256 fingerprint (hex) of the new CA certificate:
	// the successor during the overlap, the active CA during reissue.
	Successor string `json:"successor_fingerprint,omitempty"`
	// Done, Total and Waiting are the last progress of the phase: services
	// that are through it, services that count, and the ones still
	// waited for.
	Done    int      `json:"done"`
	Total   int      `json:"total"`
	Waiting []string `json:"waiting_for,omitempty"`
	// WaitingSince is when the phase started waiting for each of them,
	// kept across controller restarts so a stall is measured in full.
	WaitingSince map[string]time.Time `json:"waiting_since,omitempty"`
	// LastTransitionAt is when the phase last changed (also after a
	// rollover finished).
	LastTransitionAt time.Time `json:"last_transition_at,omitzero"`
}

// CAFacts is what the CA files say, gathered from the Authority.
type CAFacts struct {
	ActiveFingerprint    string
	ActiveNotBefore      time.Time
	ActiveNotAfter       time.Time
	SuccessorFingerprint string // "" when there is no successor
	Retiring             int    // old CA certificates still trusted
	// ActiveImported: the active CA came through `controller ca import`.
	// It is never replaced automatically (see Decide).
	ActiveImported bool
}

// ReconcileMeta makes m agree with the CA files, which win: a successor on
// disk means overlap, retiring certificates (and no successor) mean reissue,
// neither means idle. A crash between a CA step and the meta write leaves
// the meta one step behind; this is where it catches up. It returns the
// reconciled meta and, when it changed anything, a sentence for the log.
func ReconcileMeta(m Meta, f CAFacts, now time.Time) (Meta, string) {
	if m.Phase == "" {
		m.Phase = PhaseIdle
	}
	want, fp := PhaseIdle, ""
	switch {
	case f.SuccessorFingerprint != "":
		want, fp = PhaseOverlap, f.SuccessorFingerprint
	case f.Retiring > 0:
		want, fp = PhaseReissue, f.ActiveFingerprint
	}
	if m.Phase == want && (want == PhaseIdle || m.Successor == fp) {
		return m, ""
	}
	was := m.Phase
	out := Meta{Phase: want, Trigger: m.Trigger, StartedAt: m.StartedAt, PhaseSince: now, Successor: fp, LastTransitionAt: now}
	var why string
	switch {
	case want == PhaseIdle:
		out = Meta{Phase: PhaseIdle, Trigger: m.Trigger, StartedAt: m.StartedAt, LastTransitionAt: now}
		why = "the CA files hold one CA and nothing to retire"
	case want == PhaseOverlap:
		why = "the CA files hold a successor CA " + short(fp)
		if was != PhaseOverlap {
			out.Trigger, out.StartedAt = TriggerResumed, now
		}
	case want == PhaseReissue && was == PhaseOverlap && m.Successor == fp:
		why = "the successor " + short(fp) + " is already the active CA (the promote finished before the meta was saved)"
	default:
		why = "the CA files hold retiring CAs next to the active CA " + short(fp)
		if out.StartedAt.IsZero() {
			out.Trigger, out.StartedAt = TriggerResumed, now
		}
	}
	return out, fmt.Sprintf("CA rollover state reconciled with the CA files (they win): meta said %s, now %s: %s", was, want, why)
}

// Action is what a step of the rotator does to the CA.
type Action string

// Actions.
const (
	ActionNone            Action = ""
	ActionRecoverExpired  Action = "recover-expired"  // CreateSuccessor + Promote at once
	ActionCreateSuccessor Action = "create-successor" // idle -> overlap
	ActionAdoptSuccessor  Action = "adopt-successor"  // idle -> overlap, with the imported CA
	ActionPromote         Action = "promote"          // overlap -> reissue
	ActionRetire          Action = "retire"           // reissue -> idle
)

// Inputs is everything Decide needs, gathered beforehand.
type Inputs struct {
	Now  time.Time
	Meta Meta // already reconciled with the files
	CA   CAFacts
	// Requested: a `controller ca rotate` request file is present that
	// names no import.
	Requested bool
	// ImportReady: a request names an imported CA that is staged and
	// passed its checks again; it becomes the successor.
	ImportReady bool
	// Fraction of the active CA's lifetime after which a rollover starts by
	// itself; outside (0, 1) means DefaultFraction.
	Fraction float64
	// Timeout of one phase; the rollover then proceeds anyway. <= 0 means
	// DefaultTimeout.
	Timeout time.Duration
	// CredsSince is when the prober started presenting the successor's
	// client certificate (overlap only); a probe before it proves nothing.
	CredsSince time.Time
	// Members are the managed containers with their evidence.
	Members []Member
}

// Defaults of Inputs (and of the Rotator).
const (
	DefaultFraction = 0.8
	DefaultTimeout  = 24 * time.Hour
)

// Decision is what one step does and why.
type Decision struct {
	Action  Action
	Trigger string // for ActionCreateSuccessor and ActionRecoverExpired
	// Progress of the current phase (overlap and reissue).
	Progress Progress
	// TimedOut: the phase's timeout passed with services still waited for;
	// the action proceeds anyway and the caller logs an ERROR naming them.
	TimedOut bool
	// Reason explains the decision to a human.
	Reason string
}

// RotateAt returns when a CA valid in [notBefore, notAfter] is rolled over
// automatically: after fraction of its lifetime.
func RotateAt(notBefore, notAfter time.Time, fraction float64) time.Time {
	if fraction <= 0 || fraction >= 1 {
		fraction = DefaultFraction
	}
	// Not counting the clock-skew backdate, as for leaves (certs.RenewPoint).
	return certs.RenewPoint(notBefore, notAfter, fraction)
}

// Decide is the rollover's state machine: one pure function of what was
// gathered. An expired active CA is recovered whatever the phase.
//
// An imported active CA is not rolled over at the fraction of its life: the
// only successor the controller could make itself is a CA of its own,
// which would take the stack out of the operator's PKI without anyone
// asking. The operator imports the successor (the expiry warnings say so);
// if the CA expires anyway, the recovery above still brings the stack back.
func Decide(in Inputs) Decision {
	if in.Now.After(in.CA.ActiveNotAfter) {
		return Decision{Action: ActionRecoverExpired, Trigger: TriggerExpired,
			Reason: "the active CA expired at " + in.CA.ActiveNotAfter.UTC().Format(time.RFC3339) + "; it can no longer vouch for anything"}
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	switch in.Meta.Phase {
	case PhaseOverlap:
		return advance(in, ActionPromote, OverlapProgress(in.Members, in.CredsSince), timeout)
	case PhaseReissue:
		return advance(in, ActionRetire, ReissueProgress(in.Members, in.Meta.PhaseSince), timeout)
	}
	if in.ImportReady {
		return Decision{Action: ActionAdoptSuccessor, Trigger: TriggerImport, Reason: "requested by `controller ca import`"}
	}
	if in.Requested {
		return Decision{Action: ActionCreateSuccessor, Trigger: TriggerManual, Reason: "requested by `controller ca rotate`"}
	}
	if in.CA.ActiveImported {
		return Decision{Reason: "the active CA was imported: import its successor with `controller ca import` before it expires at " +
			in.CA.ActiveNotAfter.UTC().Format(time.RFC3339)}
	}
	if at := RotateAt(in.CA.ActiveNotBefore, in.CA.ActiveNotAfter, in.Fraction); !in.Now.Before(at) {
		return Decision{Action: ActionCreateSuccessor, Trigger: TriggerAutomatic,
			Reason: fmt.Sprintf("the active CA passed %v of its lifetime at %s (expires %s)", fractionOr(in.Fraction), at.UTC().Format(time.RFC3339), in.CA.ActiveNotAfter.UTC().Format(time.RFC3339))}
	}
	return Decision{Reason: "no rollover due"}
}

func advance(in Inputs, next Action, p Progress, timeout time.Duration) Decision {
	d := Decision{Progress: p}
	switch {
	case len(p.Waiting) == 0:
		d.Action, d.Reason = next, fmt.Sprintf("%d/%d services are through the %s phase", p.Done, p.Total, in.Meta.Phase)
	case !in.Meta.PhaseSince.IsZero() && in.Now.Sub(in.Meta.PhaseSince) >= timeout && next == ActionRetire:
		// Retiring the old CA is the one step that cannot be undone, and
		// doing it under a live old-CA leaf breaks that service's peers:
		// it happens on evidence only, never on a timer.
		d.TimedOut = true
		d.Reason = fmt.Sprintf("the %s phase passed its timeout %s with %d/%d services through it; the old CA is retired only once every service is through",
			in.Meta.Phase, timeout, p.Done, p.Total)
	case !in.Meta.PhaseSince.IsZero() && in.Now.Sub(in.Meta.PhaseSince) >= timeout:
		d.Action, d.TimedOut = next, true
		d.Reason = fmt.Sprintf("the %s phase passed its timeout %s with %d/%d services through it", in.Meta.Phase, timeout, p.Done, p.Total)
	default:
		d.Reason = fmt.Sprintf("waiting: %d/%d services are through the %s phase", p.Done, p.Total, in.Meta.Phase)
	}
	return d
}

func fractionOr(f float64) float64 {
	if f <= 0 || f >= 1 {
		return DefaultFraction
	}
	return f
}

func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}
