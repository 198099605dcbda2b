package dockerwatch

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
)

// fakeStream is one subscription handed out by fakeAPI.Events.
type fakeStream struct {
	opts events.ListOptions
	msgs chan events.Message
	errs chan error
	ctx  context.Context
}

// fakeAPI is a hand-written EventsAPI. The embedded nil interface makes any
// call this fake does not implement panic.
type fakeAPI struct {
	EventsAPI

	mu      sync.Mutex
	calls   []string // "subscribe", "list", "ping", "query", in call order
	streams []*fakeStream

	// onSubscribe, if set, may fill the new stream (e.g. preload an error)
	// or block, like a daemon that never answers.
	onSubscribe func(ctx context.Context, n int, s *fakeStream)
	containers  []container.Summary
	listGate    chan struct{} // if non-nil, List waits for it
	listErr     error
	pingErr     error
	// past answers the watchdog's bounded query (Until set).
	past func(opts events.ListOptions) ([]events.Message, error)
}

func (f *fakeAPI) record(call string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, call)
	n := 0
	for _, c := range f.calls {
		if c == call {
			n++
		}
	}
	return n
}

func (f *fakeAPI) Events(ctx context.Context, opts events.ListOptions) (<-chan events.Message, <-chan error) {
	if opts.Until != "" {
		return f.query(opts)
	}
	n := f.record("subscribe")
	s := &fakeStream{opts: opts, msgs: make(chan events.Message), errs: make(chan error, 1), ctx: ctx}
	f.mu.Lock()
	f.streams = append(f.streams, s)
	hook := f.onSubscribe
	f.mu.Unlock()
	if hook != nil {
		hook(ctx, n, s)
	}
	return s.msgs, s.errs
}

func (f *fakeAPI) query(opts events.ListOptions) (<-chan events.Message, <-chan error) {
	f.record("query")
	f.mu.Lock()
	past := f.past
	f.mu.Unlock()
	msgs := make(chan events.Message)
	errs := make(chan error, 1)
	go func() {
		var list []events.Message
		var err error
		if past != nil {
			list, err = past(opts)
		}
		for _, m := range list {
			msgs <- m
		}
		if err == nil {
			err = io.EOF
		}
		errs <- err
	}()
	return msgs, errs
}

func (f *fakeAPI) ContainerList(ctx context.Context, opts container.ListOptions) ([]container.Summary, error) {
	f.record("list")
	f.mu.Lock()
	gate, list, err := f.listGate, f.containers, f.listErr
	f.mu.Unlock()
	if !opts.All {
		panic("ContainerList without All: stopped containers would be missed")
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return list, err
}

func (f *fakeAPI) Ping(ctx context.Context) (types.Ping, error) {
	f.record("ping")
	f.mu.Lock()
	defer f.mu.Unlock()
	return types.Ping{APIVersion: "1.41"}, f.pingErr
}

func (f *fakeAPI) set(fn func(f *fakeAPI)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeAPI) callLog() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeAPI) count(call string) int {
	n := 0
	for _, c := range f.callLog() {
		if c == call {
			n++
		}
	}
	return n
}

// stream returns the n-th (1-based) subscription, waiting for it.
func (f *fakeAPI) stream(t *testing.T, n int) *fakeStream {
	t.Helper()
	var s *fakeStream
	waitFor(t, fmt.Sprintf("subscription #%d", n), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.streams) >= n {
			s = f.streams[n-1]
			return true
		}
		return false
	})
	return s
}

// send delivers m on the stream, failing the test if nobody receives it.
func (s *fakeStream) send(t *testing.T, m events.Message) {
	t.Helper()
	select {
	case s.msgs <- m:
	case <-time.After(5 * time.Second):
		t.Fatalf("event %s %s was not received within 5s", m.Action, m.Actor.ID)
	}
}

// fakeQueue records every key added.
type fakeQueue struct {
	mu   sync.Mutex
	keys []string
}

func (q *fakeQueue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.keys = append(q.keys, key)
}

func (q *fakeQueue) count(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, k := range q.keys {
		if k == key {
			n++
		}
	}
	return n
}

// fakeMetrics counts what the watcher reports.
type fakeMetrics struct {
	mu         sync.Mutex
	events     map[string]int
	reconnects int
}

func (m *fakeMetrics) Event(action string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		m.events = map[string]int{}
	}
	m.events[action]++
}

func (m *fakeMetrics) Reconnect() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconnects++
}

func (m *fakeMetrics) reconnectCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reconnects
}

func (m *fakeMetrics) eventCount(action string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events[action]
}

// fakeClock is an injectable clock the test moves by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// waitFor polls cond until it holds or a deadline passes. Tests never sleep
// to wait for something.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // poll interval, not a wait for an event
	}
}
