package rotation

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/probe"
)

// Member is one managed container as the rollover sees it, gathered from
// Docker (running, start time), the shared volume (its service's bundle)
// and its state record (the last probe).
type Member struct {
	Service   string
	Container string
	// Running: only running containers count. A stopped one gets the
	// current files when it starts, and a gone one is not waited for.
	Running   bool
	StartedAt time.Time
	// ReloadedAt is when a reload signal was last delivered (state record);
	// a process that reloaded after its bundle was written is current too.
	ReloadedAt time.Time
	Bundle     BundleFacts
	Probe      ProbeFacts
	// Degraded is the record's remediation verdict, shown when the
	// container holds the rollover up.
	Degraded string
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

// Progress is how far the services are through a phase.
type Progress struct {
	Done, Total int
	// Waiting lists the services still waited for, sorted.
	Waiting []string
	// Why says, per waited-for service, what its first container lacks.
	Why map[string]string
}

// Summary renders p as "4/6 services ...; waiting for a (why), b (why)".
func (p Progress) Summary(what string) string {
	s := fmt.Sprintf("%d/%d services %s", p.Done, p.Total, what)
	if len(p.Waiting) == 0 {
		return s
	}
	parts := make([]string, len(p.Waiting))
	for i, svc := range p.Waiting {
		parts[i] = svc
		if why := p.Why[svc]; why != "" {
			parts[i] += " (" + why + ")"
		}
	}
	return s + "; waiting for " + strings.Join(parts, ", ")
}

// OverlapBlocker returns "" when m has shown that it trusts the successor:
// its bundle's ca.crt holds the successor, its process started (or
// reloaded) after that bundle was written, and a probe presenting the
// successor's client certificate (at or after credsSince, and after the
// process loaded it) was not refused. It judges trust, not level: a service
// that is below its desired level for reasons unrelated to the rollover
// (plain-only, degraded) must not hold the rollover up for a day. A service
// that requires client certs and has not reloaded refuses the successor's
// (client-cert-rejected); one that serves no TLS can only show that it
// reloaded. Otherwise it says what is missing.
func OverlapBlocker(m Member, credsSince time.Time) string {
	b, p := m.Bundle, m.Probe
	switch {
	case !b.Found:
		return "no bundle yet"
	case !b.TrustsSuccessor:
		return "ca.crt does not hold the new CA yet"
	case m.loadedAt().Before(b.WrittenAt):
		return degradedOr(m, "process started before its new trust bundle; waiting for a restart")
	case credsSince.IsZero() || p.At.Before(credsSince) || p.At.Before(m.loadedAt()):
		return "no probe with the new CA's client certificate yet"
	case slices.Contains(p.Findings, string(probe.ClientCertRejected)):
		return degradedOr(m, "refused the new CA's client certificate")
	}
	return ""
}

// ReissueBlocker returns "" when nothing of m chains to the old CA any more:
// both its tls.crt and its client.crt are signed by the active (new) CA,
// its process loaded that bundle, and the leaf it serves is that very
// certificate (or, probed since the promote, it serves no TLS at all).
// Otherwise it says what is missing. The old CA may only leave the trust
// bundles when this holds for every running member.
func ReissueBlocker(m Member, promotedAt time.Time) string {
	b, p := m.Bundle, m.Probe
	switch {
	case !b.Found:
		return "no bundle yet"
	case !b.ServerFromActive:
		return "tls.crt not yet reissued by the new CA"
	case !b.ClientFromActive:
		return "client.crt not yet reissued by the new CA"
	case m.loadedAt().Before(b.WrittenAt):
		return degradedOr(m, "process started before its reissued bundle; it still presents the old client certificate")
	case p.ServedFingerprint != "" && strings.EqualFold(p.ServedFingerprint, b.ServerFingerprint):
		return ""
	case !p.At.Before(promotedAt) && !p.At.Before(m.loadedAt()) && probe.Level(p.Observed).Rank() < probe.TLS.Rank() && probe.Level(p.Observed).Rank() >= 0:
		return "" // serves no certificate at all, so none of the old CA
	case p.ServedFingerprint == "":
		return "no served certificate seen yet"
	}
	return degradedOr(m, "still serves its old certificate; waiting for a restart")
}

// OverlapProgress and ReissueProgress group running members by service: a
// service is through the phase when every running container of it is.
func OverlapProgress(ms []Member, credsSince time.Time) Progress {
	return progress(ms, func(m Member) string { return OverlapBlocker(m, credsSince) })
}

// ReissueProgress: see OverlapProgress.
func ReissueProgress(ms []Member, promotedAt time.Time) Progress {
	return progress(ms, func(m Member) string { return ReissueBlocker(m, promotedAt) })
}

func progress(ms []Member, blocker func(Member) string) Progress {
	why := map[string]string{}
	services := map[string]bool{}
	for _, m := range ms {
		if !m.Running {
			continue
		}
		services[m.Service] = true
		if _, blocked := why[m.Service]; blocked {
			continue
		}
		if reason := blocker(m); reason != "" {
			why[m.Service] = m.Container + ": " + reason
		}
	}
	p := Progress{Total: len(services), Done: len(services) - len(why), Why: why}
	for svc := range why {
		p.Waiting = append(p.Waiting, svc)
	}
	sort.Strings(p.Waiting)
	return p
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
