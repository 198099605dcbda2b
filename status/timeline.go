package status

import (
	"slices"
	"time"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// This file turns the transitions the state keeps into spans of levels over
// a window: "what happened in the last hour?". Pure; see timeline_test.go.

// DefaultWindow is how far back timelines reach when a request does not say
// (?since=). An hour covers a rebuild and its remediation ladder.
const DefaultWindow = time.Hour

// MaxWindow bounds ?since=. The state keeps state.MaxTransitions per
// container, so a longer window would mostly show what was dropped.
const MaxWindow = 24 * time.Hour

// levelTimeline is one container's observed level from since to now, oldest
// first, adjacent spans never at the same level. ts are its transitions,
// oldest first. Before its first transition the container was at that
// transition's From ("unknown" for a container's first probe); with no
// transition at all, it was at current the whole window. When ts is full
// (state.MaxTransitions), older ones may have been dropped: the From held
// only for an unknown while, so the stretch before the oldest is unknown.
func levelTimeline(ts []state.Transition, current string, since, now time.Time) []Span {
	if !now.After(since) {
		return []Span{}
	}
	level := current
	switch {
	case len(ts) >= state.MaxTransitions:
		level = LevelUnknown
	case len(ts) > 0:
		level = ts[0].From
	}
	i := 0
	for ; i < len(ts) && !ts[i].At.After(since); i++ {
		level = ts[i].To
	}
	out := make([]Span, 0, len(ts)-i+1)
	from := since
	for ; i < len(ts) && ts[i].At.Before(now); i++ {
		// An out-of-order entry (a clock step) is put where the line is.
		at := later(ts[i].At, from)
		out = appendSpan(out, spanLevel(level), from, at)
		level, from = ts[i].To, at
	}
	return appendSpan(out, spanLevel(level), from, now)
}

// appendSpan adds [from, to) at level, merging it into the last span when
// the level is the same and dropping it when empty.
func appendSpan(out []Span, level string, from, to time.Time) []Span {
	if !to.After(from) {
		return out
	}
	if n := len(out); n > 0 && out[n-1].Level == level {
		out[n-1].To = to
		return out
	}
	return append(out, Span{Level: level, From: from, To: to})
}

func spanLevel(l string) string {
	if probe.Level(l).Rank() < 0 {
		return LevelUnknown
	}
	return l
}

// worstTimeline is, at each moment, the worst level across timelines (each
// covering the same window): down < plain < tls < mtls, and unknown only
// where no timeline knows anything.
func worstTimeline(tls [][]Span) []Span {
	switch len(tls) {
	case 0:
		return []Span{}
	case 1:
		return tls[0]
	}
	var cuts []time.Time
	for _, tl := range tls {
		for _, s := range tl {
			cuts = append(cuts, s.From, s.To)
		}
	}
	slices.SortFunc(cuts, time.Time.Compare)
	cuts = slices.CompactFunc(cuts, time.Time.Equal)
	out := []Span{}
	next := make([]int, len(tls)) // per timeline, the span that holds cuts[k]
	for k := 0; k+1 < len(cuts); k++ {
		worst := LevelUnknown
		for j, tl := range tls {
			for next[j] < len(tl) && !tl[next[j]].To.After(cuts[k]) {
				next[j]++
			}
			if next[j] == len(tl) || tl[next[j]].From.After(cuts[k]) {
				continue
			}
			if l := tl[next[j]].Level; l != LevelUnknown && (worst == LevelUnknown || probe.Level(l).Rank() < probe.Level(worst).Rank()) {
				worst = l
			}
		}
		out = appendSpan(out, worst, cuts[k], cuts[k+1])
	}
	return out
}

// sinceEntries is the entries at or after since (all when since is zero),
// then the last n of those.
func sinceEntries[T any](s []T, at func(T) time.Time, since time.Time, n int) []T {
	if !since.IsZero() {
		i := 0
		for i < len(s) && at(s[i]).Before(since) {
			i++
		}
		s = s[i:]
	}
	return lastN(s, n)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
