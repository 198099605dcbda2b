package status

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// This file turns records into the JSON model. Pure: the handler gathers,
// Build decides what to show. See build_test.go.

// DefaultRecent is how many transitions and history events each container
// shows by default. The store keeps more (state.MaxHistory); the status is
// for "what happened lately", not an audit log.
const DefaultRecent = 5

// countedLevels are always present in Overview.Counts, so a dashboard or a
// script never has to tell "none" from "missing".
var countedLevels = []probe.Level{probe.MTLS, probe.TLS, probe.Plain, probe.Down}

// Build makes the report for recs as of now, as q asks (see Query).
func Build(recs []state.Record, sum Summary, now time.Time, q Query) Report {
	v := view{recent: q.Recent, filter: q.Since, since: q.Since, now: now, minimum: sum.ProductionMinimum}
	switch {
	case v.recent > 0:
	case !q.Since.IsZero():
		v.recent = MaxRecent
	default:
		v.recent = DefaultRecent
	}
	if v.since.IsZero() {
		v.since = now.Add(-DefaultWindow)
	}
	ov := Overview{
		GeneratedAt:   now.UTC(),
		Mode:          string(sum.Mode),
		Environment:   string(sum.Environment),
		Project:       sum.Project,
		Version:       sum.Version,
		CANotAfter:    utc(sum.CANotAfter),
		CASubject:     sum.CASubject,
		CADaysLeft:    daysLeft(sum.CANotAfter, now),
		CARollover:    rollover(sum.CARollover),
		Counts:        make(map[string]int, len(countedLevels)+1),
		TimelineSince: v.since.UTC(),
	}
	for _, l := range countedLevels {
		ov.Counts[string(l)] = 0
	}
	cs := make([]ContainerStatus, 0, len(recs))
	judged := make([]Readiness, 0, len(recs))
	for _, r := range recs {
		c := containerStatus(r, v)
		judged = append(judged, c.Production)
		ov.Counts[c.Observed]++
		ov.Containers++
		if c.Drift {
			ov.Drift++
		}
		if c.BelowFloor {
			ov.BelowFloor++
		}
		if c.Remediation.Degraded != "" {
			ov.Degraded++
		}
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b ContainerStatus) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Container, b.Container),
			cmp.Compare(a.ContainerID, b.ContainerID))
	})
	ov.Production = verdict(sum.ProductionMinimum, judged)
	return Report{APIVersion: APIVersion, Summary: ov, Containers: cs, Services: services(cs, now)}
}

// view is how Build shows each container.
type view struct {
	recent  int       // latest transitions and events listed
	filter  time.Time // drop entries before it; zero keeps all
	since   time.Time // where timelines start
	now     time.Time
	minimum probe.Level
}

// ForService is the part of rep about one service; found is false when no
// container of rep belongs to it.
func ForService(rep Report, service string) (sr ServiceReport, found bool) {
	sr = ServiceReport{APIVersion: APIVersion, GeneratedAt: rep.Summary.GeneratedAt, Service: service,
		Containers: []ContainerStatus{}}
	var judged []Readiness
	for _, c := range rep.Containers {
		if c.Service == service {
			sr.Containers = append(sr.Containers, c)
			judged = append(judged, c.Production)
		}
	}
	sr.Production = verdict(probe.Level(rep.Summary.Production.Minimum), judged)
	return sr, len(sr.Containers) > 0
}

func containerStatus(r state.Record, v view) ContainerStatus {
	lv := r.Level
	observed := r.ObservedLevel
	if observed == "" {
		observed = LevelUnknown
	}
	c := ContainerStatus{
		Service:       r.Service,
		Container:     r.ContainerName,
		ContainerID:   r.ContainerID,
		Project:       r.Project,
		Node:          r.Node,
		Desired:       lv.Desired,
		Floor:         lv.Floor,
		Observed:      observed,
		ObservedSince: utc(r.LevelSince),
		Drift:         lv.Drift,
		BelowFloor:    lv.BelowFloor,
		Findings:      findings(r),
		Bundle:        bundleStatus(r.Bundle, v.now),
		Served:        ServedStatus{Fingerprint: lv.ServedFingerprint, NotAfter: utc(lv.ServedNotAfter)},
		Probe: ProbeStatus{
			LastAt:     utc(lv.LastProbeAt),
			DurationMS: float64(lv.ProbeDuration.Microseconds()) / 1000,
			Plan:       redact(lv.LastPlan),
			PlanCode:   lv.LastPlanCode,
		},
		Remediation:        remediationStatus(r),
		NeedsRestart:       r.NeedsRestart,
		NeedsRestartReason: redact(r.NeedsRestartReason),
		Production: JudgeProduction(ReadinessInput{Observed: observed, Desired: lv.Desired, Minimum: v.minimum,
			IdentityRefused: r.Identity.Refused, ProbeFindings: lv.ProbeFindings}),
		Timeline:  levelTimeline(r.Transitions, r.ObservedLevel, v.since, v.now),
		UpdatedAt: utc(r.UpdatedAt),
	}
	addRecent(&c, r, v)
	return c
}

func bundleStatus(b state.BundleRecord, now time.Time) BundleStatus {
	return BundleStatus{
		ServerSerial:       b.ServerSerial,
		ClientSerial:       b.ClientSerial,
		NotAfter:           utc(b.NotAfter),
		DaysLeft:           daysLeft(b.NotAfter, now),
		Generation:         b.Generation,
		WrittenAt:          utc(b.WrittenAt),
		IssuedReason:       b.IssuedReason,
		IssuedAt:           utc(b.IssuedAt),
		RenewAt:            utc(b.RenewAt),
		EventToBundleMS:    float64(b.EventToBundle.Microseconds()) / 1000,
		ReceivedToBundleMS: float64(b.ReceivedToBundle.Microseconds()) / 1000,
	}
}

func remediationStatus(r state.Record) RemediationStatus {
	lv, rm := r.Level, r.Remediation
	return RemediationStatus{
		Attempts:     rm.Attempts,
		Budget:       lv.Budget,
		BudgetLeft:   max(lv.Budget-rm.Attempts, 0),
		NextActionAt: utc(rm.NextActionAt),
		Degraded:     redact(rm.Degraded),
		LastAction:   rm.LastAction,
		LastActionAt: utc(rm.LastActionAt),
		OnDrift:      lv.OnDrift,
	}
}

// addRecent fills c's transitions and history within the view, and puts
// its timeline in UTC.
func addRecent(c *ContainerStatus, r state.Record, v view) {
	ts := sinceEntries(r.Transitions, func(t state.Transition) time.Time { return t.At }, v.filter, v.recent)
	c.Transitions = make([]TransitionEntry, 0, len(ts))
	for _, t := range ts {
		c.Transitions = append(c.Transitions, TransitionEntry{At: utc(t.At), From: t.From, To: t.To, Cause: redact(t.Cause)})
	}
	es := sinceEntries(r.History, func(e state.Event) time.Time { return e.At }, v.filter, v.recent)
	c.History = make([]EventEntry, 0, len(es))
	for _, e := range es {
		c.History = append(c.History, EventEntry{At: utc(e.At), Action: e.Action, Result: e.Result, Reason: redact(e.Reason)})
	}
	for i := range c.Timeline {
		c.Timeline[i].From, c.Timeline[i].To = c.Timeline[i].From.UTC(), c.Timeline[i].To.UTC()
	}
}

// findings lists the probe's findings with their messages, then the bundle
// validation reasons. ProbeMessages is parallel to ProbeFindings; a record
// written by an older controller may lack messages, so a short slice is
// tolerated.
func findings(r state.Record) []Finding {
	out := []Finding{}
	for i, reason := range r.Level.ProbeFindings {
		f := Finding{Source: SourceProbe, Reason: redact(reason)}
		if i < len(r.Level.ProbeMessages) {
			f.Message = redact(r.Level.ProbeMessages[i])
		}
		out = append(out, f)
	}
	for _, reason := range r.Findings {
		out = append(out, Finding{Source: SourceBundle, Reason: redact(reason)})
	}
	for _, f := range r.Identity.Findings {
		out = append(out, Finding{Source: SourceIdentity, Reason: redact(f.Reason), Message: redact(f.Message)})
	}
	return out
}

// redact drops a free-text field that holds PEM material. No writer of
// records puts any there, but messages quote what probed services and
// certificates said, and a key must never leave the controller through a
// status page because some message one day quoted too much.
func redact(s string) string {
	if strings.Contains(s, "-----BEGIN") || strings.Contains(s, "PRIVATE KEY") {
		return "[redacted: held PEM material]"
	}
	return s
}

// rollover is the rollover as shown: times in UTC, messages redacted like
// every other free text, and the stalled entries counted.
func rollover(r *Rollover) *Rollover {
	if r == nil {
		return nil
	}
	out := *r
	out.Since, out.RotateAt, out.Message = utc(r.Since), utc(r.RotateAt), redact(r.Message)
	out.Waiting, out.NotWaitedFor, out.Stalled = rolloverMembers(r.Waiting), rolloverMembers(r.NotWaitedFor), 0
	for _, m := range out.Waiting {
		if m.Stalled {
			out.Stalled++
		}
	}
	return &out
}

func rolloverMembers(ms []RolloverMember) []RolloverMember {
	if len(ms) == 0 {
		return nil
	}
	out := make([]RolloverMember, len(ms))
	for i, m := range ms {
		m.Since, m.Message = utc(m.Since), redact(m.Message)
		out[i] = m
	}
	return out
}

// daysLeft is the whole days from now until t, rounded down (so "0" means
// less than a day left and -1 "expired less than a day ago"), or nil for a
// zero t.
func daysLeft(t, now time.Time) *int {
	if t.IsZero() {
		return nil
	}
	d := int(math.Floor(t.Sub(now).Hours() / 24))
	return &d
}

// utc normalises a time for JSON; the zero time stays zero so omitzero
// drops it.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}

func lastN[T any](s []T, n int) []T {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
