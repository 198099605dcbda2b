package rotation

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Progress is how far the services are through a phase.
type Progress struct {
	// Done services are through the phase; Total services are waited for
	// (they have a running container that is not skipped).
	Done, Total int
	// Waiting lists the services still waited for, sorted.
	Waiting []string
	// Why says, per waited-for service, what its first container lacks.
	Why map[string]string
	// Blockers are the waited-for services with that container and the
	// code of what it lacks, sorted by service.
	Blockers []Blocker
	// Skipped lists every member the phase does not wait for, and why,
	// sorted by service and container.
	Skipped []Skipped
}

// Blocker is one service a phase waits for: the first of its containers
// that is not through, and what that one lacks.
type Blocker struct {
	Service   string     `json:"service"`
	Container string     `json:"container"`
	Lacks     WaitReason `json:"lacks"`
	Message   string     `json:"message"`
	// Since is when the phase started waiting for the service.
	Since time.Time `json:"since,omitzero"`
	// Stalled: it has blocked the phase longer than the stall threshold.
	Stalled bool `json:"stalled,omitempty"`
}

// Skipped is one member a phase does not wait for.
type Skipped struct {
	Service   string     `json:"service"`
	Container string     `json:"container"`
	Reason    SkipReason `json:"reason"`
	Message   string     `json:"message"`
}

// Summary renders p as "4/6 services ...; waiting for a (why), b (why);
// not waited for: c-1 (why)".
func (p Progress) Summary(what string) string {
	s := fmt.Sprintf("%d/%d services %s", p.Done, p.Total, what)
	if len(p.Waiting) > 0 {
		parts := make([]string, len(p.Waiting))
		for i, svc := range p.Waiting {
			parts[i] = svc
			if why := p.Why[svc]; why != "" {
				parts[i] += " (" + why + ")"
			}
		}
		s += "; waiting for " + strings.Join(parts, ", ")
	}
	if len(p.Skipped) > 0 {
		parts := make([]string, len(p.Skipped))
		for i, k := range p.Skipped {
			parts[i] = fmt.Sprintf("%s (%s: %s)", k.Container, k.Reason, k.Message)
		}
		s += "; not waited for: " + strings.Join(parts, ", ")
	}
	return s
}

// OverlapProgress and ReissueProgress group members by service: a service
// is through the phase when every running container of it that is waited
// for is through.
func OverlapProgress(ms []Member, credsSince time.Time) Progress {
	return progress(ms, func(m Member) Verdict { return OverlapVerdict(m, credsSince) })
}

// ReissueProgress: see OverlapProgress.
func ReissueProgress(ms []Member, promotedAt time.Time) Progress {
	return progress(ms, func(m Member) Verdict { return ReissueVerdict(m, promotedAt) })
}

func progress(ms []Member, verdict func(Member) Verdict) Progress {
	p := Progress{Why: map[string]string{}}
	services := map[string]bool{}
	for _, m := range ms {
		v := verdict(m)
		if v.Skip != "" {
			p.Skipped = append(p.Skipped, Skipped{Service: m.Service, Container: m.Container, Reason: v.Skip, Message: v.Message})
			continue
		}
		services[m.Service] = true
		if _, blocked := p.Why[m.Service]; blocked || v.Wait == "" {
			continue
		}
		p.Why[m.Service] = m.Container + ": " + v.Message
		p.Blockers = append(p.Blockers, Blocker{Service: m.Service, Container: m.Container, Lacks: v.Wait, Message: v.Message})
	}
	slices.SortFunc(p.Blockers, func(a, b Blocker) int { return cmp.Compare(a.Service, b.Service) })
	slices.SortFunc(p.Skipped, func(a, b Skipped) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Container, b.Container))
	})
	for _, b := range p.Blockers {
		p.Waiting = append(p.Waiting, b.Service)
	}
	p.Total, p.Done = len(services), len(services)-len(p.Blockers)
	return p
}
