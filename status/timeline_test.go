package status

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// at is t0 plus m minutes (negative: before t0).
func at(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

func tr(m int, from, to string) state.Transition {
	return state.Transition{At: at(m), From: from, To: to, Cause: "probe"}
}

func span(level string, from, to int) Span { return Span{Level: level, From: at(from), To: at(to)} }

func TestLevelTimeline(t *testing.T) {
	t.Parallel()
	full := make([]state.Transition, 0, state.MaxTransitions)
	for i := range state.MaxTransitions {
		from, to := "mtls", "down"
		if i%2 == 1 {
			from, to = to, from
		}
		full = append(full, tr(-50+2*i, from, to))
	}
	tests := map[string]struct {
		ts      []state.Transition
		current string
		// want are the spans over the hour before t0.
		want []Span
	}{
		"should show a container without transitions at its current level all hour": {
			current: "mtls", want: []Span{span("mtls", -60, 0)},
		},
		"should show a container never probed as unknown all hour": {
			want: []Span{span(LevelUnknown, -60, 0)},
		},
		"should show a container created in the window as unknown before its first probe": {
			ts:      []state.Transition{tr(-20, "unknown", "plain"), tr(-12, "plain", "down"), tr(-10, "down", "mtls")},
			current: "mtls",
			want:    []Span{span(LevelUnknown, -60, -20), span("plain", -20, -12), span("down", -12, -10), span("mtls", -10, 0)},
		},
		"should start the window at the level the last transition before it set": {
			ts:      []state.Transition{tr(-180, "unknown", "tls"), tr(-90, "tls", "mtls"), tr(-30, "mtls", "plain")},
			current: "plain",
			want:    []Span{span("mtls", -60, -30), span("plain", -30, 0)},
		},
		"should ignore transitions after now": {
			ts:      []state.Transition{tr(-30, "mtls", "plain"), tr(5, "plain", "mtls")},
			current: "mtls",
			want:    []Span{span("mtls", -60, -30), span("plain", -30, 0)},
		},
		"should merge a transition that does not change the level": {
			ts:   []state.Transition{tr(-40, "mtls", "tls"), tr(-30, "tls", "tls")},
			want: []Span{span("mtls", -60, -40), span("tls", -40, 0)},
		},
		"should show unknown before the oldest kept transition when older ones may have been dropped": {
			ts: full,
			want: func() []Span {
				out := []Span{span(LevelUnknown, -60, -50)}
				for i := range state.MaxTransitions {
					l := "down"
					if i%2 == 1 {
						l = "mtls"
					}
					end := -50 + 2*(i+1)
					if i == state.MaxTransitions-1 {
						end = 0
					}
					out = append(out, span(l, -50+2*i, end))
				}
				return out
			}(),
		},
		"should put an out-of-order transition where the line is, so the level it ended lasts no time": {
			ts:   []state.Transition{tr(-30, "mtls", "plain"), tr(-40, "plain", "mtls")},
			want: []Span{span("mtls", -60, 0)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := levelTimeline(tc.ts, tc.current, at(-60), t0)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %s, want %s", spans(got), spans(tc.want))
			}
		})
	}
}

func TestWorstTimeline(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		tls  [][]Span
		want []Span
	}{
		"should be empty without containers": {want: []Span{}},
		"should be the one container's timeline": {
			tls:  [][]Span{{span("mtls", -60, -10), span("plain", -10, 0)}},
			want: []Span{span("mtls", -60, -10), span("plain", -10, 0)},
		},
		"should take the worst level of the replicas at each moment": {
			tls: [][]Span{
				{span("mtls", -60, -30), span("down", -30, -25), span("mtls", -25, 0)},
				{span("tls", -60, -40), span("mtls", -40, -10), span("plain", -10, 0)},
			},
			want: []Span{span("tls", -60, -40), span("mtls", -40, -30), span("down", -30, -25), span("mtls", -25, -10), span("plain", -10, 0)},
		},
		"should ignore a replica that did not exist yet": {
			tls: [][]Span{
				{span("mtls", -60, 0)},
				{span(LevelUnknown, -60, -5), span("plain", -5, 0)},
			},
			want: []Span{span("mtls", -60, -5), span("plain", -5, 0)},
		},
		"should be unknown only where no replica knows anything": {
			tls:  [][]Span{{span(LevelUnknown, -60, -20), span("mtls", -20, 0)}, {span(LevelUnknown, -60, -10), span("tls", -10, 0)}},
			want: []Span{span(LevelUnknown, -60, -20), span("mtls", -20, -10), span("tls", -10, 0)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := worstTimeline(tc.tls); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %s, want %s", spans(got), spans(tc.want))
			}
		})
	}
}

func TestBuildShowsTheHour(t *testing.T) {
	t.Parallel()
	recs := []state.Record{
		record("platform", "p-1", func(r *state.Record) {
			r.Transitions = []state.Transition{tr(-90, "unknown", "mtls"), tr(-20, "mtls", "down"), tr(-18, "down", "mtls")}
			for _, m := range []int{-120, -20, -3} {
				r.AddEvent(state.Event{At: at(m), Action: "restart", Result: "ok"})
			}
		}),
		record("platform", "p-2", bundleExpires(at(10*24*60)), func(r *state.Record) {
			r.Bundle.RenewAt = at(3 * 24 * 60)
			r.Level.ServedNotAfter = at(2 * 24 * 60)
			r.Transitions = []state.Transition{tr(-40, "unknown", "tls"), tr(-30, "tls", "mtls")}
		}),
	}
	tests := map[string]struct {
		query Query
		// check inspects the report built at t0.
		check func(t *testing.T, rep Report)
	}{
		"should start timelines an hour back by default, and list the last few entries": {
			check: func(t *testing.T, rep Report) {
				if !rep.Summary.TimelineSince.Equal(at(-60)) {
					t.Errorf("timeline_since: got %v, want %v", rep.Summary.TimelineSince, at(-60))
				}
				want := []Span{span("mtls", -60, -20), span("down", -20, -18), span("mtls", -18, 0)}
				if got := rep.Containers[0].Timeline; !reflect.DeepEqual(got, want) {
					t.Errorf("timeline: got %s, want %s", spans(got), spans(want))
				}
				if got := len(rep.Containers[0].History); got != 3 {
					t.Errorf("history: got %d entries, want all 3", got)
				}
			},
		},
		"should keep only entries since ?since=, and start the timelines there": {
			query: Query{Since: at(-30)},
			check: func(t *testing.T, rep Report) {
				c := rep.Containers[0]
				if len(c.History) != 2 || len(c.Transitions) != 2 {
					t.Errorf("got %d events and %d transitions, want 2 and 2", len(c.History), len(c.Transitions))
				}
				if got := c.Timeline[0].From; !got.Equal(at(-30)) {
					t.Errorf("timeline starts at %v, want %v", got, at(-30))
				}
			},
		},
		"should combine ?since= and ?recent=": {
			query: Query{Since: at(-30), Recent: 1},
			check: func(t *testing.T, rep Report) {
				if h := rep.Containers[0].History; len(h) != 1 || !h[0].At.Equal(at(-3)) {
					t.Errorf("got history %+v, want the one restart at -3m", h)
				}
			},
		},
		"should roll the replicas up into one service with the worst level at each moment": {
			check: func(t *testing.T, rep Report) {
				if len(rep.Services) != 1 {
					t.Fatalf("got %d services, want 1", len(rep.Services))
				}
				s := rep.Services[0]
				want := []Span{span("mtls", -60, -40), span("tls", -40, -30), span("mtls", -30, -20), span("down", -20, -18), span("mtls", -18, 0)}
				if !reflect.DeepEqual(s.Timeline, want) {
					t.Errorf("service timeline: got %s, want %s", spans(s.Timeline), spans(want))
				}
				if s.Service != "platform" || s.Containers != 2 || s.Observed != "mtls" || s.ProductionReady != 2 {
					t.Errorf("got %+v, want platform with 2 containers at mtls, both ready", s)
				}
			},
		},
		"should give the service the earliest expiry dates and count a process serving an older leaf": {
			check: func(t *testing.T, rep Report) {
				e := rep.Services[0].Expiry
				if !e.BundleNotAfter.Equal(at(10*24*60)) || !e.RenewAt.Equal(at(3*24*60)) || !e.ServedNotAfter.Equal(at(2*24*60)) {
					t.Errorf("got %+v, want bundle +10d, renew +3d, served +2d", e)
				}
				if e.DaysLeft == nil || *e.DaysLeft != 10 || e.ServedDaysLeft == nil || *e.ServedDaysLeft != 2 || e.ServesOlder != 1 {
					t.Errorf("got days_left %s, served_days_left %s, serves_older %d, want 10, 2, 1",
						intp(e.DaysLeft), intp(e.ServedDaysLeft), e.ServesOlder)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.check(t, Build(recs, devSummary(), t0, tc.query))
		})
	}
}

func TestParseQuery(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		query string
		// want is the parsed query; wantErr a substring of the error.
		want    Query
		wantErr string
	}{
		"should leave both unset without parameters": {query: ""},
		"should read recent":                         {query: "recent=8", want: Query{Recent: 8}},
		"should cap recent at what the state keeps":  {query: "recent=500", want: Query{Recent: MaxRecent}},
		"should read since as a duration back":       {query: "since=15m", want: Query{Since: at(-15)}},
		"should read since as an RFC 3339 time":      {query: "since=2026-03-01T11:30:00Z", want: Query{Since: at(-30)}},
		"should cap since at a day back":             {query: "since=72h", want: Query{Since: at(-24 * 60)}},
		"should refuse recent=0":                     {query: "recent=0", wantErr: "recent"},
		"should refuse a recent that is no number":   {query: "recent=all", wantErr: "recent"},
		"should refuse a negative duration":          {query: "since=-5m", wantErr: "positive"},
		"should refuse a time in the future":         {query: "since=2026-03-01T13:00:00Z", wantErr: "not in the past"},
		"should refuse since that is neither":        {query: "since=yesterday", wantErr: "RFC 3339"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseQuery(v, t0)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Recent != tc.want.Recent || !got.Since.Equal(tc.want.Since) {
				t.Errorf("got %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func spans(ss []Span) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = fmt.Sprintf("%s[%s..%s]", s.Level, s.From.Sub(t0), s.To.Sub(t0))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
