package state

import (
	"testing"
	"time"
)

func TestRecordCaps(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		events, transitions int // how many to add
		// wantEvents/wantTransitions: lengths after adding;
		// wantFirstEvent/wantFirstTransition: index (in add order) of the oldest kept entry.
		wantEvents, wantTransitions         int
		wantFirstEvent, wantFirstTransition int
	}{
		"should keep everything while under the caps": {
			events: 3, transitions: 2, wantEvents: 3, wantTransitions: 2,
		},
		"should keep exactly the caps when reaching them": {
			events: MaxHistory, transitions: MaxTransitions,
			wantEvents: MaxHistory, wantTransitions: MaxTransitions,
		},
		"should drop the oldest entries beyond the caps, keeping the newest last": {
			events: MaxHistory + 7, transitions: MaxTransitions + 3,
			wantEvents: MaxHistory, wantTransitions: MaxTransitions,
			wantFirstEvent: 7, wantFirstTransition: 3,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var r Record
			for i := range tc.events {
				r.AddEvent(Event{At: fixedNow.Add(time.Duration(i) * time.Second)})
			}
			for i := range tc.transitions {
				r.AddTransition(Transition{At: fixedNow.Add(time.Duration(i) * time.Second)})
			}
			if got := len(r.History); got != tc.wantEvents {
				t.Fatalf("len(History): got %d, want %d", got, tc.wantEvents)
			}
			if got := len(r.Transitions); got != tc.wantTransitions {
				t.Fatalf("len(Transitions): got %d, want %d", got, tc.wantTransitions)
			}
			checkOrder(t, "History", eventTimes(r.History), tc.wantFirstEvent)
			checkOrder(t, "Transitions", transitionTimes(r.Transitions), tc.wantFirstTransition)
		})
	}
}

// checkOrder asserts the entries are consecutive seconds starting at first.
func checkOrder(t *testing.T, field string, times []time.Time, first int) {
	t.Helper()
	for i, at := range times {
		if want := fixedNow.Add(time.Duration(first+i) * time.Second); !at.Equal(want) {
			t.Fatalf("%s[%d].At: got %v, want %v", field, i, at, want)
		}
	}
}

func eventTimes(es []Event) []time.Time {
	out := make([]time.Time, len(es))
	for i, e := range es {
		out[i] = e.At
	}
	return out
}

func transitionTimes(ts []Transition) []time.Time {
	out := make([]time.Time, len(ts))
	for i, tr := range ts {
		out[i] = tr.At
	}
	return out
}

func TestPutEnforcesCapsOnDirectlyAppendedSlices(t *testing.T) {
	t.Parallel()
	s, _ := mustOpen(t, t.TempDir())
	r := newRecord("c1", withHistory(MaxHistory+5))
	if err := s.Put(r); err != nil {
		t.Fatalf("Put: got %v, want nil", err)
	}
	got, _, err := s.Get("c1")
	if err != nil {
		t.Fatalf("Get: got %v, want nil", err)
	}
	if len(got.History) != MaxHistory {
		t.Fatalf("len(History) after Put: got %d, want %d", len(got.History), MaxHistory)
	}
	checkOrder(t, "History", eventTimes(got.History), 5)
	if len(r.History) != MaxHistory+5 {
		t.Fatalf("caller's History after Put: got %d entries, want %d (Put must not modify it)", len(r.History), MaxHistory+5)
	}
}
