package rotation

import (
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// PhaseKey names the rollover phase the CA files show, unique per
// rollover: "overlap:<successor fingerprint>", "reissue:<active
// fingerprint>", or "" when none is in progress. The reconciler spends a
// container's rollover reload per key, so each phase of each rollover
// gets one.
func PhaseKey(f CAFacts) string {
	switch {
	case f.SuccessorFingerprint != "":
		return string(PhaseOverlap) + ":" + f.SuccessorFingerprint
	case f.Retiring > 0:
		return string(PhaseReissue) + ":" + f.ActiveFingerprint
	}
	return ""
}

// ReloadNeed is what the rollover in progress needs of one process.
type ReloadNeed struct {
	// Phase is the PhaseKey of the phase in progress; "" when none is.
	Phase string
	// Waits: the phase waits for this process to load its new bundle.
	Waits bool
	// Skip and Message say why it does not (Phase set, Waits false).
	Skip    SkipReason
	Message string
}

// ReloadNeed says what the rollover in progress needs of a running process
// the prober just saw serving observed, with findings. It is the judgement
// OverlapVerdict makes, from the same evidence, so the reconciler restarts
// (once per phase, on the phase's own budget) exactly the processes the
// phase waits for. During reissue every process is waited for: each must
// present a client certificate of the new CA before the old one goes. The
// phase is read from the CA files, which win over the meta.
func (r *Rotator) ReloadNeed(observed probe.Level, findings []probe.Reason) ReloadNeed {
	fs := make([]string, len(findings))
	for i, f := range findings {
		fs[i] = string(f)
	}
	return reloadNeed(caFacts(r.Authority), ProbeFacts{Observed: string(observed), Findings: fs})
}

func reloadNeed(f CAFacts, p ProbeFacts) ReloadNeed {
	key := PhaseKey(f)
	if key == "" {
		return ReloadNeed{}
	}
	if f.SuccessorFingerprint != "" {
		if skip, msg := overlapSkip(p); skip != "" {
			return ReloadNeed{Phase: key, Skip: skip, Message: msg}
		}
	}
	return ReloadNeed{Phase: key, Waits: true}
}
