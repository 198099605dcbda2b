package reconcile

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"
)

// manualClock is a Clock that only moves when Advance is called. Due
// callbacks run synchronously inside Advance, so once Advance returns every
// scheduled add that came due is in the queue.
type manualClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*manualTimer
}

type manualTimer struct {
	at   time.Time
	d    time.Duration // as requested, for assertions
	f    func()
	done bool // fired or stopped
}

func newManualClock() *manualClock {
	return &manualClock{now: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)}
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &manualTimer{at: c.now.Add(d), d: d, f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.done {
			return false
		}
		t.done = true
		return true
	}
}

// Advance moves time forward and runs the callbacks that came due, earliest
// first, without holding the clock's lock (they call back into the queue,
// which may stop other timers).
func (c *manualClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*manualTimer
	for _, t := range c.timers {
		if !t.done && !t.at.After(c.now) {
			t.done = true
			due = append(due, t)
		}
	}
	c.timers = slices.DeleteFunc(c.timers, func(t *manualTimer) bool { return t.done })
	c.mu.Unlock()
	sort.SliceStable(due, func(i, j int) bool { return due[i].at.Before(due[j].at) })
	for _, t := range due {
		t.f()
	}
}

// Pending returns the requested durations of timers not yet fired or
// stopped, in the order they were created.
func (c *manualClock) Pending() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ds []time.Duration
	for _, t := range c.timers {
		if !t.done {
			ds = append(ds, t.d)
		}
	}
	return ds
}

// waitForCondition polls cond until it holds or a deadline passes. Tests
// never sleep to wait for something to happen.
func waitForCondition(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// queueIdle reports whether nothing is queued or in flight.
func queueIdle(q *Queue) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue)-q.head == 0 && len(q.processing) == 0
}

func newTestQueue(clock *manualClock) *Queue {
	// Jitter disabled so delays are exact.
	return NewQueue(QueueOptions{Clock: clock, Jitter: -1})
}

// mustGet takes the next key without blocking the test forever.
func mustGet(t *testing.T, q *Queue) string {
	t.Helper()
	if q.Len() == 0 {
		t.Fatalf("got empty queue, want a ready key")
	}
	key, ok := q.get(t.Context())
	if !ok {
		t.Fatalf("got ok=false from get, want a key")
	}
	return key
}

func drainQueue(t *testing.T, q *Queue) []string {
	t.Helper()
	var keys []string
	for q.Len() > 0 {
		key := mustGet(t, q)
		keys = append(keys, key)
		q.done(key)
	}
	return keys
}

func TestQueueAddDedupesAndTracksInFlightKeys(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		ops func(t *testing.T, q *Queue)
		// wantDrained is the keys handed out after ops, in order.
		wantDrained []string
	}{
		"adding a key twice queues it once": {
			ops:         func(t *testing.T, q *Queue) { q.Add("a"); q.Add("a") },
			wantDrained: []string{"a"},
		},
		"distinct keys are handed out in the order they were added": {
			ops:         func(t *testing.T, q *Queue) { q.Add("a"); q.Add("b"); q.Add("a"); q.Add("c") },
			wantDrained: []string{"a", "b", "c"},
		},
		"a key added while in flight is not handed out until its run is done": {
			ops: func(t *testing.T, q *Queue) {
				q.Add("a")
				key := mustGet(t, q)
				q.Add("a")
				if got := q.Len(); got != 0 {
					t.Errorf("got Len %d while a is in flight, want 0", got)
				}
				q.done(key)
			},
			wantDrained: []string{"a"},
		},
		"several adds while in flight collapse into one re-run": {
			ops: func(t *testing.T, q *Queue) {
				q.Add("a")
				key := mustGet(t, q)
				for range 5 {
					q.Add("a")
				}
				q.Add("b")
				q.done(key)
			},
			wantDrained: []string{"b", "a"},
		},
		"a key not added while in flight is not re-run": {
			ops: func(t *testing.T, q *Queue) {
				q.Add("a")
				q.done(mustGet(t, q))
			},
			wantDrained: nil,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			q := newTestQueue(newManualClock())
			tc.ops(t, q)
			if got := drainQueue(t, q); !slices.Equal(got, tc.wantDrained) {
				t.Errorf("got drained %q, want %q", got, tc.wantDrained)
			}
		})
	}
}

func TestQueueKeepsOrderAcrossCompaction(t *testing.T) {
	t.Parallel()
	q := newTestQueue(newManualClock())
	var want []string
	for i := range 5000 {
		q.Add(fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	var got []string
	for range 3000 { // past half: the front is reclaimed
		key := mustGet(t, q)
		got = append(got, key)
		q.done(key)
	}
	for i := 5000; i < 7000; i++ {
		q.Add(fmt.Sprint(i))
		want = append(want, fmt.Sprint(i))
	}
	got = append(got, drainQueue(t, q)...)
	if !slices.Equal(got, want) {
		t.Errorf("got %d keys out of order, want %d keys in FIFO order", len(got), len(want))
	}
}

func TestQueueBackoffGrowsToMaxDelay(t *testing.T) {
	t.Parallel()
	clock := newManualClock()
	q := newTestQueue(clock)
	want := []time.Duration{
		500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second,
		16 * time.Second, 32 * time.Second, 64 * time.Second, 128 * time.Second, 256 * time.Second,
		5 * time.Minute, 5 * time.Minute, 5 * time.Minute,
	}
	q.Add("a")
	for i, wantDelay := range want {
		key := mustGet(t, q)
		delay, retries := q.addRateLimited(key)
		q.done(key)
		if delay != wantDelay {
			t.Fatalf("failure %d: got delay %v, want %v", i+1, delay, wantDelay)
		}
		if retries != i+1 || q.Retries(key) != i+1 {
			t.Fatalf("failure %d: got retries %d (Retries %d), want %d", i+1, retries, q.Retries(key), i+1)
		}
		if got := clock.Pending(); !slices.Equal(got, []time.Duration{wantDelay}) {
			t.Fatalf("failure %d: got pending timers %v, want [%v]", i+1, got, wantDelay)
		}
		clock.Advance(wantDelay - time.Nanosecond)
		if got := q.Len(); got != 0 {
			t.Fatalf("failure %d: got Len %d just before the delay, want 0", i+1, got)
		}
		clock.Advance(time.Nanosecond)
		if got := q.Len(); got != 1 {
			t.Fatalf("failure %d: got Len %d once the delay passed, want 1", i+1, got)
		}
	}
}

func TestQueueRetryDelayDoesNotOverflow(t *testing.T) {
	t.Parallel()
	q := newTestQueue(newManualClock())
	if got := q.retryDelay(1 << 40); got != DefaultMaxDelay {
		t.Errorf("got %v after 2^40 failures, want %v", got, DefaultMaxDelay)
	}
}

func TestQueueJitterStaysWithinBounds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		rand float64 // what randFloat returns
		// failures and the un-jittered delay for that many failures.
		failures int
		nominal  time.Duration
		// wantMin and wantMax bound the delay (inclusive).
		wantMin, wantMax time.Duration
	}{
		"no randomness leaves the delay as is": {
			rand: 0, failures: 0, nominal: 500 * time.Millisecond,
			wantMin: 500 * time.Millisecond, wantMax: 500 * time.Millisecond,
		},
		"the most randomness shaves almost a tenth off the first delay": {
			rand: 0.999999, failures: 0, nominal: 500 * time.Millisecond,
			wantMin: 450 * time.Millisecond, wantMax: 451 * time.Millisecond,
		},
		"jitter never pushes a capped delay past MaxDelay": {
			rand: 0.5, failures: 30, nominal: 5 * time.Minute,
			wantMin: 284900 * time.Millisecond, wantMax: 285 * time.Second,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			q := NewQueue(QueueOptions{Clock: newManualClock()})
			q.randFloat = func() float64 { return tc.rand }
			if got := q.retryDelay(tc.failures); got < tc.wantMin || got > tc.wantMax {
				t.Errorf("got %v (nominal %v), want within [%v, %v]", got, tc.nominal, tc.wantMin, tc.wantMax)
			}
		})
	}

	t.Run("real randomness stays within (d*0.9, d]", func(t *testing.T) {
		t.Parallel()
		q := NewQueue(QueueOptions{Clock: newManualClock()})
		for i := range 1000 {
			failures := i % 15
			nominal := min(DefaultBaseDelay<<failures, DefaultMaxDelay)
			got := q.retryDelay(failures)
			if got <= nominal*9/10 || got > nominal {
				t.Fatalf("got %v for %d failures, want within (%v, %v]", got, failures, nominal*9/10, nominal)
			}
		}
	})
}

func TestQueueForgetResetsBackoff(t *testing.T) {
	t.Parallel()
	q := newTestQueue(newManualClock())
	q.Add("a")
	key := mustGet(t, q)
	for range 3 {
		q.addRateLimited(key)
	}
	if got := q.Retries(key); got != 3 {
		t.Fatalf("got Retries %d after 3 failures, want 3", got)
	}
	q.forget(key)
	if got := q.Retries(key); got != 0 {
		t.Errorf("got Retries %d after forget, want 0", got)
	}
	if delay, _ := q.addRateLimited(key); delay != DefaultBaseDelay {
		t.Errorf("got delay %v for the first failure after forget, want %v", delay, DefaultBaseDelay)
	}
}

func TestQueueAddAfterEarliestWins(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		ops func(q *Queue, clock *manualClock)
		// wantLen is Len right after ops.
		wantLen int
		// wantPending is the timers still scheduled after ops.
		wantPending []time.Duration
		// wantLenLater is Len after draining and advancing another hour:
		// 1 only if a schedule was still pending; catches stale timers
		// firing extra runs.
		wantLenLater int
	}{
		"a scheduled key is queued once its delay passes": {
			ops: func(q *Queue, clock *manualClock) {
				q.AddAfter("a", 10*time.Second)
				clock.Advance(10 * time.Second)
			},
			wantLen: 1,
		},
		"a later AddAfter does not postpone an earlier one": {
			ops: func(q *Queue, clock *manualClock) {
				q.AddAfter("a", 10*time.Second)
				q.AddAfter("a", time.Minute)
				clock.Advance(10 * time.Second)
			},
			wantLen: 1,
		},
		"an earlier AddAfter replaces a later one": {
			ops: func(q *Queue, clock *manualClock) {
				q.AddAfter("a", time.Minute)
				q.AddAfter("a", 10*time.Second)
			},
			wantLen:      0,
			wantPending:  []time.Duration{10 * time.Second},
			wantLenLater: 1,
		},
		"an immediate Add wins over a scheduled one": {
			ops: func(q *Queue, clock *manualClock) {
				q.AddAfter("a", time.Minute)
				q.Add("a")
			},
			wantLen: 1,
		},
		"AddAfter for a key already queued is a no-op": {
			ops: func(q *Queue, clock *manualClock) {
				q.Add("a")
				q.AddAfter("a", time.Second)
			},
			wantLen: 1,
		},
		"AddAfter for a key in flight and dirty is a no-op": {
			ops: func(q *Queue, clock *manualClock) {
				q.Add("a")
				key, _ := q.get(context.Background())
				q.Add(key)
				q.AddAfter(key, time.Second)
				q.done(key)
			},
			wantLen: 1,
		},
		"AddAfter for a key in flight schedules it after the run": {
			ops: func(q *Queue, clock *manualClock) {
				q.Add("a")
				key, _ := q.get(context.Background())
				q.AddAfter(key, time.Second)
				q.done(key)
			},
			wantLen:      0,
			wantPending:  []time.Duration{time.Second},
			wantLenLater: 1,
		},
		"a non-positive delay adds now": {
			ops: func(q *Queue, clock *manualClock) {
				q.AddAfter("a", 0)
				q.AddAfter("b", -time.Second)
			},
			wantLen: 2,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := newManualClock()
			q := newTestQueue(clock)
			tc.ops(q, clock)
			if got := q.Len(); got != tc.wantLen {
				t.Errorf("got Len %d, want %d", got, tc.wantLen)
			}
			if got := clock.Pending(); !slices.Equal(got, tc.wantPending) {
				t.Errorf("got pending timers %v, want %v", got, tc.wantPending)
			}
			drainQueue(t, q)
			clock.Advance(time.Hour)
			if got := q.Len(); got != tc.wantLenLater {
				t.Errorf("got Len %d an hour later, want %d", got, tc.wantLenLater)
			}
		})
	}
}

func TestQueueGetReturnsWhenContextEnds(t *testing.T) {
	t.Parallel()
	q := newTestQueue(newManualClock())
	ctx, cancel := context.WithCancel(t.Context())
	defer context.AfterFunc(ctx, q.wake)()
	got := make(chan bool)
	go func() {
		_, ok := q.get(ctx)
		got <- ok
	}()
	cancel()
	select {
	case ok := <-got:
		if ok {
			t.Errorf("got ok=true from get after cancel, want false")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("get still blocked 10s after its context was canceled")
	}

	q.Add("a")
	if _, ok := q.get(ctx); ok {
		t.Errorf("got a key from get with a canceled context, want none: shutdown stops handing out work")
	}
}

// The event receive loop calls Add; the daemon drops subscribers that stall
// for ~100ms, so Add must never wait for a consumer and must stay O(1) with
// 100k keys queued. A blocking Add hangs (caught by the deadline); an O(n)
// Add makes 200k calls quadratic (also caught by the deadline). Latency is
// logged, not asserted: performance figures come from BenchmarkQueueAdd, never
// from timed assertions on a noisy machine.
func TestQueueAddNeverBlocks(t *testing.T) {
	const keys = 100_000
	q := NewQueue(QueueOptions{})
	q.Add("in-flight")
	inFlight, _ := q.get(t.Context())
	names := make([]string, keys)
	for i := range names {
		names[i] = fmt.Sprintf("container-%d", i)
	}

	latencies := make(chan []time.Duration, 1)
	go func() {
		ds := make([]time.Duration, 0, 2*keys)
		for range 2 { // the second round re-adds keys already queued
			for _, key := range names {
				start := time.Now()
				q.Add(key)
				q.Add(inFlight) // in flight: only marks it dirty
				ds = append(ds, time.Since(start))
			}
		}
		latencies <- ds
	}()
	select {
	case ds := <-latencies:
		slices.Sort(ds)
		t.Logf("Add latency: p50 %v, p99 %v, max %v", ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1])
	case <-time.After(30 * time.Second):
		t.Fatal("200k Adds with no consumer did not finish in 30s: Add blocks or is not O(1)")
	}
	if got := q.Len(); got != keys {
		t.Errorf("got Len %d, want %d", got, keys)
	}
}

// BenchmarkQueueAdd measures Add with 100k distinct keys already queued and
// no consumer: the event receive loop's cost per event.
func BenchmarkQueueAdd(b *testing.B) {
	q := NewQueue(QueueOptions{})
	for i := range 100_000 {
		q.Add(fmt.Sprintf("queued-%d", i))
	}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("container-%d", i)
	}
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		q.Add(keys[i%len(keys)])
		i++
	}
}

func BenchmarkQueueAddGet(b *testing.B) {
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = fmt.Sprintf("container-%d", i)
	}
	q := NewQueue(QueueOptions{})
	ctx := b.Context()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		q.Add(keys[i%len(keys)])
		key, _ := q.get(ctx)
		q.done(key)
		i++
	}
}
