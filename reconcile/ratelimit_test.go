package reconcile

import (
	"testing"
	"time"
)

func TestSpacing(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	s := &Spacing{Interval: 5 * time.Second}
	steps := []struct {
		at   time.Duration
		want time.Duration
	}{
		{0, 0},                         // the first action goes at once
		{time.Second, 4 * time.Second}, // the next waits for the interval
		{4 * time.Second, time.Second}, // a refused reservation takes no token
		{5 * time.Second, 0},           // then one more goes
		{6 * time.Second, 4 * time.Second},
	}
	for _, st := range steps {
		if got := s.Reserve(t0.Add(st.at)); got != st.want {
			t.Errorf("at +%s got wait %s, want %s", st.at, got, st.want)
		}
	}
}
