package rotation

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// Member is one managed container as the rollover sees it, gathered from
// Docker (state, start time), the shared volume (its service's bundle)
// and its state record (the last probe).
type Member struct {
	Service   string
	Container string
	// Running: only running containers are waited for. A stopped or
	// restarting one reads the current files when it starts, and a gone
	// one is not waited for.
	Running bool
	// State is Docker's state, to say why a container that does not run
	// is not waited for.
	State     dockerwatch.State
	StartedAt time.Time
	// ReloadedAt is when a reload signal was last delivered (state record);
	// a process that reloaded after its bundle was written is current too.
	ReloadedAt time.Time
	Bundle     BundleFacts
	Probe      ProbeFacts
	// Degraded is the record's remediation verdict, shown when the
	// container holds the rollover up.
	Degraded string
	// PhaseReloaded: the ladder already spent this container's one reload
	// of the current phase, so a restart still missing will not come from
	// the controller.
	PhaseReloaded bool
}

// BundleFacts are what the service's bundle on disk says.
type BundleFacts struct {
	Found     bool
	WrittenAt time.Time // the generation's mtime
	// TrustsSuccessor: ca.crt holds the successor CA (overlap) or the new
	// active CA (reissue).
	TrustsSuccessor bool
	// ServerFingerprint is the SHA-256 (hex) of tls.crt.
	ServerFingerprint string
	// ServerFromActive: tls.crt is signed by the active CA.
	ServerFromActive bool
	// ClientFromActive: client.crt is signed by the active CA.
	ClientFromActive bool
}

// ProbeFacts are the last probe's results from the state record.
type ProbeFacts struct {
	At                time.Time // zero: never probed
	Observed, Desired string    // probe levels
	Findings          []string  // probe reason codes
	ServedFingerprint string    // SHA-256 (hex) of the served leaf
}

// WaitReason is what a member a phase waits for still lacks. The codes are
// stable: they go into status, logs and the stalled metric's label.
type WaitReason string

// Wait reasons, in the order the checks run.
const (
	WaitNoBundle        WaitReason = "no-bundle"                  // the reconciler has not written it yet
	WaitTrustNotCurrent WaitReason = "trust-bundle-lacks-new-ca"  // ca.crt does not hold the new CA yet
	WaitNoProbe         WaitReason = "no-probe-with-new-ca"       // no probe since the prober switched (or since the process loaded)
	WaitProcessStale    WaitReason = "process-older-than-bundle"  // the process must restart (or reload) to load its bundle
	WaitRefusedNewCA    WaitReason = "refused-new-ca-client-cert" // it still trusts only the old CA as a server
	WaitServerOldCA     WaitReason = "server-cert-from-old-ca"    // tls.crt not reissued yet
	WaitClientOldCA     WaitReason = "client-cert-from-old-ca"    // client.crt not reissued yet
	WaitServesOldLeaf   WaitReason = "serves-old-leaf"            // the process still serves its old certificate
	WaitNoServedCert    WaitReason = "no-served-certificate-seen" // never seen serving a certificate
)

// WaitReasons lists every WaitReason, for metrics that pre-create series.
func WaitReasons() []WaitReason {
	return []WaitReason{WaitNoBundle, WaitTrustNotCurrent, WaitNoProbe, WaitProcessStale, WaitRefusedNewCA,
		WaitServerOldCA, WaitClientOldCA, WaitServesOldLeaf, WaitNoServedCert}
}

// SkipReason is why a phase does not wait for a member.
type SkipReason string

// Skip reasons.
const (
	SkipStopped    SkipReason = "stopped"    // not running: it reads the current files when it starts
	SkipRestarting SkipReason = "restarting" // Docker is restarting it: same
	// SkipNoClientAuth: observed tls with client-auth-not-enforced; it
	// verifies no client certificate, so it cannot refuse the new CA's.
	SkipNoClientAuth SkipReason = "client-auth-not-enforced"
	// SkipServesPlain: observed plain without refusing our certificate: no
	// verifying peer can use it, so whom it trusts refuses no one.
	SkipServesPlain SkipReason = "serves-plain"
	// SkipServesNothing: observed down while running: it serves no peer.
	SkipServesNothing SkipReason = "serves-nothing"
)

// Verdict is what one member means to a phase: waited for (Wait says what
// it lacks), not waited for (Skip says why), or through (both empty).
type Verdict struct {
	Wait    WaitReason
	Skip    SkipReason
	Message string // for humans
}

func wait(r WaitReason, msg string) Verdict { return Verdict{Wait: r, Message: msg} }

// OverlapVerdict judges m during the overlap. A member is through once it
// has shown that it trusts the successor: its ca.crt holds it, its process
// started (or reloaded) after that bundle was written, and a probe
// presenting the successor's client certificate (at or after credsSince,
// and after the process loaded it) was not refused.
//
// Only a server that verifies client certificates can refuse a peer's new
// certificate, so only such a server is waited for: fresh evidence (a probe
// with the successor's certificate) of tls without client auth, of plain,
// or of nothing served at all means the overlap does not wait for its
// restart (overlapSkip). Waiting for those held rollovers up for good: the
// ladder does not restart a degraded container whose budget is spent.
func OverlapVerdict(m Member, credsSince time.Time) Verdict {
	b, p := m.Bundle, m.Probe
	if v, skip := notRunning(m); skip {
		return v
	}
	switch {
	case !b.Found:
		return wait(WaitNoBundle, "no bundle yet")
	case !b.TrustsSuccessor:
		return wait(WaitTrustNotCurrent, "ca.crt does not hold the new CA yet")
	case credsSince.IsZero() || p.At.Before(credsSince):
		return wait(WaitNoProbe, "no probe with the new CA's client certificate yet")
	}
	if r, msg := overlapSkip(p); r != "" {
		return Verdict{Skip: r, Message: msg}
	}
	switch {
	case m.loadedAt().Before(b.WrittenAt):
		return wait(WaitProcessStale, restartNeeded(m, "process started before its new trust bundle; waiting for a restart"))
	case p.At.Before(m.loadedAt()):
		return wait(WaitNoProbe, "no probe with the new CA's client certificate since the process loaded it")
	case slices.Contains(p.Findings, string(probe.ClientCertRejected)):
		return wait(WaitRefusedNewCA, degradedOr(m, "refused the new CA's client certificate"))
	}
	return Verdict{}
}

// overlapSkip says, from one probe, whether the member can refuse a client
// certificate of the new CA. A refusal (client-cert-rejected) always counts
// against it; so does a verified handshake that ended without an answer
// (health-not-ok on plain), which may be a refusal in disguise.
func overlapSkip(p ProbeFacts) (SkipReason, string) {
	refused := slices.Contains(p.Findings, string(probe.ClientCertRejected)) ||
		slices.Contains(p.Findings, string(probe.HealthNotOK))
	switch {
	case refused:
		return "", ""
	case probe.Level(p.Observed) == probe.TLS && slices.Contains(p.Findings, string(probe.ClientAuthNotEnforced)):
		return SkipNoClientAuth, "serves TLS without verifying client certificates (client-auth-not-enforced): it cannot refuse the new CA's; its restart is not waited for"
	case probe.Level(p.Observed) == probe.Plain:
		return SkipServesPlain, "serves plain (no TLS a verifying peer can use) and did not refuse the new CA's client certificate: its restart is not waited for"
	case probe.Level(p.Observed) == probe.Down:
		return SkipServesNothing, "answers on no probed port: it serves no peer, so it refuses none; its restart is not waited for"
	}
	return "", ""
}

// ReissueVerdict judges m during reissue: it is through once nothing of it
// chains to the old CA any more: both its tls.crt and its client.crt are
// signed by the active (new) CA, its process loaded that bundle, and the
// leaf it serves is that very certificate (or, probed since the promote, it
// serves no TLS at all). The old CA may only leave the trust bundles when
// this holds for every running member, whatever it serves: a process still
// presenting an old client certificate would be refused by every peer.
func ReissueVerdict(m Member, promotedAt time.Time) Verdict {
	b, p := m.Bundle, m.Probe
	if v, skip := notRunning(m); skip {
		return v
	}
	switch {
	case !b.Found:
		return wait(WaitNoBundle, "no bundle yet")
	case !b.ServerFromActive:
		return wait(WaitServerOldCA, "tls.crt not yet reissued by the new CA")
	case !b.ClientFromActive:
		return wait(WaitClientOldCA, "client.crt not yet reissued by the new CA")
	case m.loadedAt().Before(b.WrittenAt):
		return wait(WaitProcessStale, restartNeeded(m, "process started before its reissued bundle; it still presents the old client certificate"))
	case p.ServedFingerprint != "" && strings.EqualFold(p.ServedFingerprint, b.ServerFingerprint):
		return Verdict{}
	case !p.At.Before(promotedAt) && !p.At.Before(m.loadedAt()) && probe.Level(p.Observed).Rank() < probe.TLS.Rank() && probe.Level(p.Observed).Rank() >= 0:
		return Verdict{} // serves no certificate at all, so none of the old CA
	case p.ServedFingerprint == "":
		return wait(WaitNoServedCert, "no served certificate seen yet")
	}
	return wait(WaitServesOldLeaf, degradedOr(m, "still serves its old certificate; waiting for a restart"))
}

// notRunning skips a member whose process does not run: whenever it starts
// it reads the files as they are then.
func notRunning(m Member) (Verdict, bool) {
	switch {
	case m.Running:
		return Verdict{}, false
	case m.State == dockerwatch.StateRestarting:
		return Verdict{Skip: SkipRestarting, Message: "Docker is restarting it: it loads the current bundle when it starts"}, true
	}
	return Verdict{Skip: SkipStopped, Message: fmt.Sprintf("not running (%s): it loads the current bundle when it starts", cmp.Or(string(m.State), "stopped"))}, true
}

// restartNeeded says why a restart that is waited for may not come.
func restartNeeded(m Member, why string) string {
	if m.PhaseReloaded {
		why += "; the controller already restarted it once in this phase (its rollover reload)"
		if m.Degraded != "" {
			why += " and its drift budget is spent (" + m.Degraded + "): restart it by hand"
		}
		return why
	}
	return degradedOr(m, why)
}

// loadedAt is when the process last read its certificates: its start, or
// a later reload signal.
func (m Member) loadedAt() time.Time {
	if m.ReloadedAt.After(m.StartedAt) {
		return m.ReloadedAt
	}
	return m.StartedAt
}

func degradedOr(m Member, why string) string {
	if m.Degraded != "" {
		return why + "; degraded: " + m.Degraded
	}
	return why
}
