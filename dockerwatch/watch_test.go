package dockerwatch

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/errdefs"
)

type harness struct {
	api     *fakeAPI
	q       *fakeQueue
	metrics *fakeMetrics
	clock   *fakeClock
	w       *Watcher

	mu     sync.Mutex
	sleeps []time.Duration
}

type harnessOpt func(*WatcherOptions, *Watcher)

// startWatcher runs a Watcher against api with test-sized durations: no
// resync, no watchdog, 1ms initial backoff, unless opts say otherwise.
// Backoff waits are recorded and skipped. Cleanup cancels it and checks that
// Start returned nil.
func startWatcher(t *testing.T, api *fakeAPI, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{api: api, q: &fakeQueue{}, metrics: &fakeMetrics{}, clock: newFakeClock()}
	o := WatcherOptions{
		Resync:           time.Hour,
		StableAfter:      time.Minute,
		WatchdogInterval: time.Hour,
		WatchdogGrace:    time.Second,
		RequestTimeout:   time.Second,
		InitialBackoff:   time.Millisecond,
		MaxBackoff:       8 * time.Millisecond,
		Logger:           slog.New(slog.DiscardHandler),
		Metrics:          h.metrics,
		Clock:            h.clock.Now,
	}
	probe := &Watcher{}
	for _, opt := range opts {
		opt(&o, probe)
	}
	h.w = NewWatcher(api, h.q, o)
	h.w.sleep = func(ctx context.Context, d time.Duration) bool {
		h.mu.Lock()
		h.sleeps = append(h.sleeps, d)
		h.mu.Unlock()
		if probe.sleep != nil {
			return probe.sleep(ctx, d)
		}
		return ctx.Err() == nil
	}
	if probe.jitter < 0 {
		h.w.jitter = 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.w.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start returned %v after cancel, want nil", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Start did not return within 5s of cancel")
		}
	})
	return h
}

func withOptions(fn func(*WatcherOptions)) harnessOpt {
	return func(o *WatcherOptions, _ *Watcher) { fn(o) }
}

func withNoJitter() harnessOpt {
	return func(_ *WatcherOptions, w *Watcher) { w.jitter = -1 } // -1 marks "set to 0"
}

func withSleep(fn func(ctx context.Context, d time.Duration) bool) harnessOpt {
	return func(_ *WatcherOptions, w *Watcher) { w.sleep = fn }
}

func (h *harness) sleepLog() []time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.sleeps)
}

func summaries(ids ...string) []container.Summary {
	var out []container.Summary
	for _, id := range ids {
		out = append(out, container.Summary{ID: id})
	}
	return out
}

func TestWatcherSubscribesBeforeListingOnEveryConnection(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{containers: summaries("c1", "c2")}
	h := startWatcher(t, api)

	waitFor(t, "first connection ready", h.w.Ready)
	if got, want := h.q.count("c1")+h.q.count("c2"), 2; got != want {
		t.Errorf("got %d keys enqueued by the initial list, want %d", got, want)
	}
	api.stream(t, 1).errs <- errors.New("connection reset by peer")
	waitFor(t, "second list", func() bool { return api.count("list") == 2 })
	waitFor(t, "ready again", h.w.Ready)

	got := api.callLog()
	want := []string{"subscribe", "list", "subscribe", "list"}
	if !slices.Equal(got, want) {
		t.Errorf("got calls %v, want %v", got, want)
	}
	f := api.stream(t, 1).opts.Filters
	if !f.ExactMatch("type", "container") {
		t.Errorf("got filter type=%v, want container", f.Get("type"))
	}
	for _, a := range []string{"create", "start", "die", "destroy", "health_status"} {
		if !f.ExactMatch("event", a) {
			t.Errorf("got event filter %v, want it to include %q", f.Get("event"), a)
		}
	}
	if got, want := f.Len(), 2; got != want {
		t.Errorf("got %d filter keys, want %d (type, event)", got, want)
	}
}

func TestWatcherReconnectsWhenTheStreamEnds(t *testing.T) {
	t.Parallel()
	cases := map[string]func(s *fakeStream){
		"should reconnect and re-list when the stream reports an error": func(s *fakeStream) {
			s.errs <- errors.New("read: connection reset by peer")
		},
		"should reconnect and re-list when the stream ends with EOF (daemon restart)": func(s *fakeStream) {
			s.errs <- io.EOF
		},
		"should reconnect and re-list when the error channel is closed": func(s *fakeStream) {
			close(s.errs)
		},
		"should reconnect and re-list when the message channel is closed": func(s *fakeStream) {
			close(s.msgs)
		},
	}
	for name, end := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{containers: summaries("c1")}
			h := startWatcher(t, api)
			waitFor(t, "ready", h.w.Ready)

			end(api.stream(t, 1))
			waitFor(t, "re-subscribe", func() bool { return api.count("subscribe") == 2 })
			waitFor(t, "ready after reconnect", h.w.Ready)
			if got, want := h.q.count("c1"), 2; got != want {
				t.Errorf("got c1 enqueued %d times, want %d (initial list + re-list)", got, want)
			}
			if got, want := h.metrics.reconnectCount(), 1; got != want {
				t.Errorf("got %d reconnects counted, want %d", got, want)
			}
		})
	}
}

func TestWatcherEnqueuesEventsAndCountsThem(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	h := startWatcher(t, api)
	waitFor(t, "ready", h.w.Ready)

	s := api.stream(t, 1)
	s.send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionCreate, Actor: events.Actor{ID: "new"}})
	s.send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionHealthStatusHealthy, Actor: events.Actor{ID: "new"}})
	waitFor(t, "both events enqueued", func() bool { return h.q.count("new") == 2 })
	if got, want := h.metrics.eventCount("create"), 1; got != want {
		t.Errorf("got %d create events counted, want %d", got, want)
	}
	if got, want := h.metrics.eventCount("health_status"), 1; got != want {
		t.Errorf("got %d health_status events counted, want %d (detail stripped from the action)", got, want)
	}
}

func TestWatcherReadyTransitions(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	sleepGate := make(chan struct{})
	api := &fakeAPI{listGate: gate}
	h := startWatcher(t, api, withSleep(func(ctx context.Context, d time.Duration) bool {
		select {
		case <-sleepGate:
			return true
		case <-ctx.Done():
			return false
		}
	}))

	waitFor(t, "connected", h.w.Connected)
	if h.w.Ready() {
		t.Fatalf("got Ready() = true while the initial list is still running, want false")
	}
	close(gate)
	waitFor(t, "ready after the list", h.w.Ready)

	api.stream(t, 1).errs <- errors.New("boom")
	waitFor(t, "disconnected", func() bool { return !h.w.Connected() })
	if h.w.Ready() {
		t.Errorf("got Ready() = true while disconnected, want false")
	}
	close(sleepGate)
	waitFor(t, "ready after reconnect", h.w.Ready)
}

func TestWatcherIsNotReadyWhenTheListFails(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{listErr: errdefs.System(errors.New("daemon busy"))}
	h := startWatcher(t, api)
	waitFor(t, "a retry after the failed list", func() bool { return api.count("subscribe") >= 2 })
	if h.w.Ready() {
		t.Errorf("got Ready() = true although every list failed, want false")
	}
	api.set(func(f *fakeAPI) { f.listErr = nil })
	waitFor(t, "ready once listing works", h.w.Ready)
}

func TestWatcherResyncEnqueuesOnlyWhatChanged(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{containers: summaries("c1", "c2", "c3")}
	h := startWatcher(t, api, withOptions(func(o *WatcherOptions) { o.Resync = 5 * time.Millisecond }))
	waitFor(t, "the initial list", func() bool { return h.q.count("c1") == 1 && h.q.count("c2") == 1 && h.q.count("c3") == 1 })
	waitFor(t, "two resyncs", func() bool { return api.count("list") >= 3 })
	if got := h.q.count("c1") + h.q.count("c2") + h.q.count("c3"); got != 3 {
		t.Errorf("enqueues after resyncs of an unchanged stack: got %d, want only the initial 3", got)
	}
	// c2 stopped and c3 went away without an event the stream delivered;
	// c4 is new.
	api.set(func(f *fakeAPI) {
		f.containers = summaries("c1", "c2", "c4")
		f.containers[1].State = "exited"
	})
	waitFor(t, "the changed, gone and new containers", func() bool {
		return h.q.count("c2") == 2 && h.q.count("c3") == 2 && h.q.count("c4") == 1
	})
	if got := h.q.count("c1"); got != 1 {
		t.Errorf("c1, unchanged: got %d enqueues, want 1", got)
	}
	if got, want := api.count("subscribe"), 1; got != want {
		t.Errorf("got %d subscriptions, want %d: a resync must not reconnect", got, want)
	}
}

func TestWatcherBackoffGrowsCapsAndResetsAfterAStableConnection(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	var h *harness
	stable := make(chan struct{})
	api.onSubscribe = func(ctx context.Context, n int, s *fakeStream) {
		switch {
		case n <= 5:
			s.errs <- errors.New("connection refused") // fails at once
		case n == 6:
			// Lives past StableAfter, then drops.
			go func() {
				<-stable
				s.errs <- io.EOF
			}()
		default:
			s.errs <- errors.New("connection refused")
		}
	}
	h = startWatcher(t, api, withNoJitter())
	waitFor(t, "the stable connection", func() bool { return api.count("subscribe") >= 6 })
	waitFor(t, "ready", h.w.Ready)
	h.clock.Advance(2 * time.Minute) // StableAfter is 1m
	close(stable)
	waitFor(t, "a failure after the stable connection", func() bool { return len(h.sleepLog()) >= 7 })

	got := h.sleepLog()[:7]
	ms := time.Millisecond
	want := []time.Duration{1 * ms, 2 * ms, 4 * ms, 8 * ms, 8 * ms, 1 * ms, 2 * ms}
	if !slices.Equal(got, want) {
		t.Errorf("got backoff waits %v, want %v (doubling, capped at 8ms, reset after the stable connection)", got, want)
	}
}

func TestWatcherBackoffIsJittered(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{onSubscribe: func(_ context.Context, _ int, s *fakeStream) { s.errs <- errors.New("refused") }}
	h := startWatcher(t, api, withOptions(func(o *WatcherOptions) {
		o.InitialBackoff = 100 * time.Millisecond
		o.MaxBackoff = 100 * time.Millisecond
	}))
	waitFor(t, "20 attempts", func() bool { return len(h.sleepLog()) >= 20 })
	distinct := map[time.Duration]bool{}
	for _, d := range h.sleepLog()[:20] {
		if d < 50*time.Millisecond || d > 150*time.Millisecond {
			t.Errorf("got backoff %v, want within 100ms ±50%%", d)
		}
		distinct[d] = true
	}
	if len(distinct) < 2 {
		t.Errorf("got %d distinct backoff values over 20 attempts, want jitter", len(distinct))
	}
}

func TestWatcherSubscribeTimesOutOnADaemonThatNeverAnswers(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	api.onSubscribe = func(ctx context.Context, n int, s *fakeStream) {
		if n == 1 {
			<-ctx.Done() // like the SDK waiting for headers that never come
			s.errs <- ctx.Err()
		}
	}
	h := startWatcher(t, api, withOptions(func(o *WatcherOptions) { o.RequestTimeout = 20 * time.Millisecond }))
	waitFor(t, "ready on the second attempt", h.w.Ready)
	if got, want := h.metrics.reconnectCount(), 1; got != want {
		t.Errorf("got %d reconnects, want %d", got, want)
	}
}

func TestStartReturnsNilWhenTheContextEnds(t *testing.T) {
	t.Parallel()
	w := NewWatcher(&fakeAPI{}, &fakeQueue{}, WatcherOptions{Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	waitFor(t, "ready", w.Ready)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Start did not return within 5s of cancel")
	}
	if w.Ready() || w.Connected() {
		t.Errorf("got Ready()=%v Connected()=%v after Start returned, want both false", w.Ready(), w.Connected())
	}
}
