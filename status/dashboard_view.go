package status

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file shapes a Report into what dashboard.html renders: services as
// collapsible groups, problems first, and timelines as SVG positions. The
// script (dashboard.js) has a twin of each function here; keep them in step.

// pageGroup is one service: its row and its containers' rows.
type pageGroup struct {
	S          ServiceStatus
	Containers []pageContainer
	Class      string
	// Expanded: the containers' rows show without a click. A service of
	// one container says everything in its own row.
	Expanded     bool
	Findings     []Finding // every reason of its containers, once
	LastAction   string
	LastActionAt time.Time
	Timeline     timelineView
	severity     int // the worst severity of its containers
}

type pageContainer struct {
	C        ContainerStatus
	Class    string
	Timeline timelineView
}

// timelineView is a timeline as SVG: x and width in percent of the window.
type timelineView struct {
	Bands []bandView
	Marks []markView
	CA    *markView // the CA rollover phase's start, when in the window
}

type bandView struct {
	X, W  string
	Level string
	Title string
}

type markView struct {
	X      string
	Kind   string // restart, signal, relabel, issue, other
	Result string
	Title  string
}

// severity orders containers and services for "problems first": below the
// floor, drifted, not ready for production, with findings, healthy.
func severity(c ContainerStatus) int {
	switch {
	case c.BelowFloor:
		return 0
	case c.Drift || c.Remediation.Degraded != "":
		return 1
	case !c.Production.Ready:
		return 2
	case len(c.Findings) > 0 || c.NeedsRestart:
		return 3
	}
	return 4
}

// pageGroups groups rep's containers by service, problems first.
func pageGroups(rep Report) []pageGroup {
	win := window{since: rep.Summary.TimelineSince, now: rep.Summary.GeneratedAt}
	ca := caMark(rep.Summary.CARollover, win)
	byService := map[string][]ContainerStatus{}
	for _, c := range rep.Containers {
		byService[c.Service] = append(byService[c.Service], c)
	}
	groups := make([]pageGroup, 0, len(rep.Services))
	for _, s := range rep.Services {
		cs := byService[s.Service]
		slices.SortStableFunc(cs, func(a, b ContainerStatus) int { return cmp.Compare(severity(a), severity(b)) })
		g := pageGroup{S: s, Class: groupClass(s), Findings: []Finding{}}
		var events []EventEntry
		seen := map[string]bool{}
		worst := 4
		for _, c := range cs {
			g.Containers = append(g.Containers, pageContainer{C: c, Class: rowClass(c), Timeline: timeline(c.Timeline, c.History, ca, win, false)})
			events = append(events, c.History...)
			worst = min(worst, severity(c))
			for _, f := range c.Findings {
				if !seen[f.Reason] {
					seen[f.Reason] = true
					g.Findings = append(g.Findings, f)
				}
			}
			if r := c.Remediation; r.LastAction != "" && r.LastActionAt.After(g.LastActionAt) {
				g.LastAction, g.LastActionAt = r.LastAction, r.LastActionAt
			}
		}
		slices.SortStableFunc(events, func(a, b EventEntry) int { return a.At.Compare(b.At) })
		g.Timeline = timeline(s.Timeline, events, ca, win, true)
		g.Expanded, g.severity = len(cs) > 1 && worst < 4, worst
		groups = append(groups, g)
	}
	slices.SortStableFunc(groups, func(a, b pageGroup) int {
		return cmp.Or(cmp.Compare(a.severity, b.severity), cmp.Compare(a.S.Service, b.S.Service))
	})
	return groups
}

func groupClass(s ServiceStatus) string {
	cls := []string{"group"}
	if s.Drift > 0 {
		cls = append(cls, "drift")
	}
	if s.BelowFloor > 0 {
		cls = append(cls, "below-floor")
	}
	if s.Degraded > 0 {
		cls = append(cls, "degraded")
	}
	if s.ProductionReady < s.Containers {
		cls = append(cls, "not-ready")
	}
	return strings.Join(cls, " ")
}

// window is the span of time the timelines show.
type window struct{ since, now time.Time }

// pct is where t falls in the window, in percent, clamped to it.
func (w window) pct(t time.Time) float64 {
	total := w.now.Sub(w.since)
	if total <= 0 {
		return 0
	}
	return min(max(float64(t.Sub(w.since))/float64(total)*100, 0), 100)
}

func pctText(p float64) string { return strconv.FormatFloat(p, 'f', 2, 64) + "%" }

// timeline places spans and the events of the window. With merge (a
// service's row, where replicas act together) an event that falls within
// half a percent of an earlier one of the same kind and result is counted
// on that mark instead of drawn over it.
func timeline(spans []Span, events []EventEntry, ca *markView, w window, merge bool) timelineView {
	tv := timelineView{CA: ca}
	for _, s := range spans {
		x, end := w.pct(s.From), w.pct(s.To)
		tv.Bands = append(tv.Bands, bandView{X: pctText(x), W: pctText(end - x), Level: s.Level,
			Title: fmt.Sprintf("%s %s–%s", s.Level, clock(s.From), clock(s.To))})
	}
	var merged []int // per mark, how many events it stands for
	var at []float64 // per mark, where it is
	for _, e := range events {
		if e.At.Before(w.since) || e.At.After(w.now) {
			continue
		}
		x, kind := w.pct(e.At), markKind(e.Action)
		if j := lastMark(tv.Marks, kind, e.Result); merge && j >= 0 && x-at[j] < 0.5 {
			merged[j]++
			continue
		}
		tv.Marks = append(tv.Marks, markView{X: pctText(x), Kind: kind, Result: e.Result, Title: markTitle(e)})
		merged, at = append(merged, 1), append(at, x)
	}
	for i, n := range merged {
		if n > 1 {
			tv.Marks[i].Title += fmt.Sprintf(" (×%d)", n)
		}
	}
	return tv
}

// lastMark is the index of the last mark of kind and result.
func lastMark(ms []markView, kind, result string) int {
	for i := len(ms) - 1; i >= 0; i-- {
		if ms[i].Kind == kind && ms[i].Result == result {
			return i
		}
	}
	return -1
}

// markKind is the glyph of an action; one the page does not know is drawn
// as "other" rather than dropped.
func markKind(action string) string {
	switch action {
	case "restart", "signal", "relabel", "issue":
		return action
	}
	return "other"
}

func markTitle(e EventEntry) string {
	action := e.Action
	if action == "issue" && e.Reason == "renew-due" {
		action = "renew"
	}
	s := fmt.Sprintf("%s %s %s", clock(e.At), action, e.Result)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

// caMark is the start of the CA rollover's current phase, when it falls in
// the window.
func caMark(r *Rollover, w window) *markView {
	if r == nil || r.Since.IsZero() || r.Phase == "" || r.Phase == "idle" || r.Since.Before(w.since) || r.Since.After(w.now) {
		return nil
	}
	return &markView{X: pctText(w.pct(r.Since)), Kind: "ca", Title: fmt.Sprintf("%s CA rollover: %s", clock(r.Since), r.Phase)}
}

func clock(t time.Time) string { return t.UTC().Format("15:04:05") }

// expiryOrder is the services, soonest bundle expiry first; a service
// without a bundle comes last.
func expiryOrder(ss []ServiceStatus) []ServiceStatus {
	out := slices.Clone(ss)
	slices.SortStableFunc(out, func(a, b ServiceStatus) int {
		ta, tb := a.Expiry.BundleNotAfter, b.Expiry.BundleNotAfter
		switch {
		case ta.IsZero() && tb.IsZero():
			return cmp.Compare(a.Service, b.Service)
		case ta.IsZero():
			return 1
		case tb.IsZero():
			return -1
		}
		return cmp.Or(ta.Compare(tb), cmp.Compare(a.Service, b.Service))
	})
	return out
}

// expiryScale is the days the expiry bars span: at least 90 (a leaf's
// default lifetime), more when some bundle lasts longer.
func expiryScale(ss []ServiceStatus) int {
	scale := 90
	for _, s := range ss {
		if d := s.Expiry.DaysLeft; d != nil {
			scale = max(scale, *d)
		}
	}
	return scale
}

// dayPct is where a date days away falls on the expiry bar, in percent.
func dayPct(t, now time.Time, scale int) string {
	if t.IsZero() {
		return "0%"
	}
	days := t.Sub(now).Hours() / 24
	return pctText(min(max(days/float64(scale)*100, 0), 100))
}

// readinessEntry is one line of the readiness panel: the containers of a
// service that production would refuse for the same first reason.
type readinessEntry struct {
	Service, Observed, Floor string
	Code                     ReadinessCode
	Message                  string
	Containers               []string
}

// notReady lists what production would refuse, one entry per service and
// reason, at most limit entries; more counts the rest.
func notReady(rep Report, limit int) (list []readinessEntry, more int) {
	index := map[string]int{}
	for _, c := range rep.Containers {
		i := slices.IndexFunc(c.Production.Findings, func(f ReadinessFinding) bool { return f.Blocking })
		if c.Production.Ready || i < 0 {
			continue
		}
		f := c.Production.Findings[i]
		key := c.Service + "\x00" + c.Observed + "\x00" + string(f.Code)
		if j, ok := index[key]; ok {
			if j < len(list) {
				list[j].Containers = append(list[j].Containers, c.Container)
			}
			continue
		}
		index[key] = len(index)
		if len(list) < limit {
			list = append(list, readinessEntry{Service: c.Service, Observed: c.Observed, Floor: c.Production.Floor, Code: f.Code,
				Message: f.Message, Containers: []string{c.Container}})
		} else {
			more++
		}
	}
	return list, more
}

// blockingCodes is the summary's blocking codes, most containers first.
func blockingCodes(v ProductionVerdict) []codeCount {
	out := make([]codeCount, 0, len(v.Blocking))
	for code, n := range v.Blocking {
		out = append(out, codeCount{Code: code, N: n})
	}
	slices.SortFunc(out, func(a, b codeCount) int { return cmp.Or(cmp.Compare(b.N, a.N), cmp.Compare(a.Code, b.Code)) })
	return out
}

type codeCount struct {
	Code string
	N    int
}
