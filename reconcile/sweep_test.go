package reconcile

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

type listFunc func() ([]state.Record, error)

func (f listFunc) List() ([]state.Record, error) { return f() }

func TestSweeperEnqueuesEveryRecordAtStartAndEveryInterval(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	ticks := make(chan time.Time)
	var mu sync.Mutex
	var enqueued []string
	tickCount := 0
	fail := false
	s := &Sweeper{
		Records: listFunc(func() ([]state.Record, error) {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return nil, errors.New("bbolt is closed")
			}
			return []state.Record{{ContainerID: "a"}, {ContainerID: "b"}}, nil
		}),
		Enqueue: func(id string) { mu.Lock(); enqueued = append(enqueued, id); mu.Unlock() },
		Every:   time.Minute,
		Tick:    func() { mu.Lock(); tickCount++; mu.Unlock() },
		Clock:   func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		After: func(d time.Duration) <-chan time.Time {
			if d != 30*time.Second {
				t.Errorf("wait between looks: got %s, want 30s (the tick bound, below Every)", d)
			}
			return ticks
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Start(ctx) }()
	advance := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
		ticks <- now
	}
	waitForCondition(t, "the sweep at start", func() bool { mu.Lock(); defer mu.Unlock(); return len(enqueued) == 2 })
	advance(30 * time.Second) // half an interval: a tick, no sweep
	advance(30 * time.Second) // a full interval: a sweep
	waitForCondition(t, "the second sweep", func() bool { mu.Lock(); defer mu.Unlock(); return len(enqueued) == 4 })
	mu.Lock()
	fail = true
	mu.Unlock()
	advance(time.Minute) // a failed list is logged, and the loop goes on
	advance(30 * time.Second)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Start: got %v, want nil when ctx ends", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"a", "b", "a", "b"}; !slices.Equal(enqueued, want) {
		t.Errorf("enqueued: got %v, want %v (at start and after one interval)", enqueued, want)
	}
	if tickCount < 4 {
		t.Errorf("ticks: got %d, want one per look (at least 4)", tickCount)
	}
}
