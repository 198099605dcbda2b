package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// scriptedReconciler runs fn and records calls, per-key overlap and
// concurrency. It embeds Reconciler so any method it doesn't implement
// panics if called.
type scriptedReconciler struct {
	Reconciler
	// fn decides the outcome; call counts from 1 per key. nil: success.
	fn func(ctx context.Context, key string, call int) (Result, error)

	mu         sync.Mutex
	calls      map[string]int
	finished   map[string]int
	inFlight   map[string]bool
	overlaps   []string // keys seen running twice at once
	running    int
	maxRunning int
}

func newScriptedReconciler(fn func(ctx context.Context, key string, call int) (Result, error)) *scriptedReconciler {
	return &scriptedReconciler{
		fn: fn, calls: map[string]int{}, finished: map[string]int{}, inFlight: map[string]bool{},
	}
}

func (r *scriptedReconciler) Reconcile(ctx context.Context, key string) (Result, error) {
	r.mu.Lock()
	r.calls[key]++
	call := r.calls[key]
	if r.inFlight[key] {
		r.overlaps = append(r.overlaps, key)
	}
	r.inFlight[key] = true
	r.running++
	r.maxRunning = max(r.maxRunning, r.running)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.inFlight[key] = false
		r.running--
		r.finished[key]++
		r.mu.Unlock()
	}()
	if r.fn == nil {
		return Result{}, nil
	}
	return r.fn(ctx, key, call)
}

func (r *scriptedReconciler) Calls(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[key]
}

func (r *scriptedReconciler) Finished(key string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.finished[key]
}

func (r *scriptedReconciler) Running() (now, peak int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running, r.maxRunning
}

// recordingMetrics counts outcomes. It embeds ControllerMetrics so any
// method added later and not implemented here panics.
type recordingMetrics struct {
	ControllerMetrics
	mu      sync.Mutex
	results map[Outcome]int
	ids     []string
	panics  int
}

func (m *recordingMetrics) ReconcileDone(o Outcome, _ time.Duration, id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.results[o]++
	m.ids = append(m.ids, id)
}

func (m *recordingMetrics) Panic() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.panics++
}

func (m *recordingMetrics) Results(label Outcome) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.results[label]
}

func (m *recordingMetrics) Panics() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.panics
}

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningController is a started controller with a manual clock.
type runningController struct {
	q       *Queue
	clock   *manualClock
	metrics *recordingMetrics
	logs    *syncBuffer
	cancel  context.CancelFunc
	stopped chan error // receives Start's return value
}

type runOption func(*ControllerOptions)

func withWorkers(n int) runOption { return func(o *ControllerOptions) { o.Workers = n } }

// startController starts a controller for r and stops it when the test
// ends, failing the test if Start does not return promptly.
func startController(t *testing.T, r Reconciler, opts ...runOption) *runningController {
	t.Helper()
	clock := newManualClock()
	rn := &runningController{
		q:       newTestQueue(clock),
		clock:   clock,
		metrics: &recordingMetrics{results: map[Outcome]int{}},
		logs:    &syncBuffer{},
		stopped: make(chan error, 1),
	}
	co := ControllerOptions{
		Metrics: rn.metrics,
		Logger:  slog.New(slog.NewJSONHandler(rn.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, o := range opts {
		o(&co)
	}
	c := NewController(r, rn.q, co)
	ctx, cancel := context.WithCancel(context.Background())
	rn.cancel = cancel
	go func() { rn.stopped <- c.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-rn.stopped:
		case <-time.After(10 * time.Second):
			t.Errorf("Start did not return within 10s of cancel")
		}
	})
	return rn
}

func TestControllerDedupesKeysAddedWhileQueued(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	r := newScriptedReconciler(func(ctx context.Context, key string, _ int) (Result, error) {
		if key == "blocker" {
			<-release
		}
		return Result{}, nil
	})
	rn := startController(t, r, withWorkers(1))
	rn.q.Add("blocker")
	waitForCondition(t, "blocker to be in flight", func() bool { return r.Calls("blocker") == 1 })
	for range 10 {
		rn.q.Add("a")
	}
	if got := rn.q.Len(); got != 1 {
		t.Errorf("got Len %d after adding a 10 times, want 1", got)
	}
	close(release)
	waitForCondition(t, "a to be reconciled", func() bool { return r.Finished("a") == 1 && queueIdle(rn.q) })
	if got := r.Calls("a"); got != 1 {
		t.Errorf("got %d reconciles of a, want 1", got)
	}
}

func TestControllerNeverRunsTheSameKeyConcurrently(t *testing.T) {
	t.Parallel()
	r := newScriptedReconciler(func(ctx context.Context, key string, _ int) (Result, error) {
		runtime.Gosched() // widen the window in which an overlap would show
		return Result{}, nil
	})
	rn := startController(t, r, withWorkers(8))
	keys := []string{"a", "b", "c"}
	var adders sync.WaitGroup
	for range 4 {
		adders.Go(func() {
			for i := range 2000 {
				rn.q.Add(keys[i%len(keys)])
			}
		})
	}
	adders.Wait()
	waitForCondition(t, "the queue to drain", func() bool { return queueIdle(rn.q) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.overlaps) != 0 {
		t.Errorf("got overlapping reconciles of %q, want none", r.overlaps)
	}
	for _, k := range keys {
		if r.calls[k] == 0 {
			t.Errorf("got 0 reconciles of %s, want at least 1", k)
		}
	}
}

func TestControllerReRunsKeyAddedInFlightExactlyOnce(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	r := newScriptedReconciler(func(ctx context.Context, key string, call int) (Result, error) {
		if call == 1 {
			<-release
		}
		return Result{}, nil
	})
	rn := startController(t, r, withWorkers(4))
	rn.q.Add("a")
	waitForCondition(t, "the first run to start", func() bool { return r.Calls("a") == 1 })
	for range 5 {
		rn.q.Add("a")
	}
	if got := rn.q.Len(); got != 0 {
		t.Errorf("got Len %d while a is in flight, want 0 (dirty, not queued)", got)
	}
	close(release)
	waitForCondition(t, "the re-run to finish", func() bool { return r.Finished("a") == 2 && queueIdle(rn.q) })
	if got := r.Calls("a"); got != 2 {
		t.Errorf("got %d reconciles, want 2", got)
	}
	if _, peak := r.Running(); peak != 1 {
		t.Errorf("got peak concurrency %d for one key, want 1", peak)
	}
}

func TestControllerBacksOffFailingKeys(t *testing.T) {
	t.Parallel()
	r := newScriptedReconciler(func(ctx context.Context, key string, _ int) (Result, error) {
		return Result{}, errors.New("docker is down")
	})
	rn := startController(t, r)
	rn.q.Add("a")
	for i, want := range []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second} {
		waitForCondition(t, fmt.Sprintf("retry %d to be scheduled", i+1), func() bool {
			return slices.Equal(rn.clock.Pending(), []time.Duration{want})
		})
		if got := rn.q.Retries("a"); got != i+1 {
			t.Fatalf("got Retries %d after %d failures, want %d", got, i+1, i+1)
		}
		rn.clock.Advance(want)
	}
	if got := rn.metrics.Results(OutcomeError); got < 5 {
		t.Errorf("got %d error results, want at least 5", got)
	}
	logs := rn.logs.String()
	for _, want := range []string{`"container_id":"a"`, `"reconcile_id":"`, `"error":"docker is down"`, `"retries":3`, `"requeue_after":2000000000`} {
		if !strings.Contains(logs, want) {
			t.Errorf("got logs without %s, want it:\n%s", want, logs)
		}
	}
}

func TestControllerGivesOneReconcileOneID(t *testing.T) {
	t.Parallel()
	seen := make(chan string, 1)
	r := newScriptedReconciler(func(ctx context.Context, key string, _ int) (Result, error) {
		LoggerFrom(ctx).Info("inside the reconcile")
		seen <- ReconcileIDFrom(ctx)
		return Result{}, errors.New("docker is down")
	})
	rn := startController(t, r)
	rn.q.Add("a")
	id := <-seen
	waitForCondition(t, "the outcome to be logged", func() bool { return strings.Contains(rn.logs.String(), "reconcile failed; retrying") })
	if len(id) != 8 {
		t.Fatalf("reconcile ID in the context: got %q, want 8 hex digits", id)
	}
	rn.metrics.mu.Lock()
	ids := slices.Clone(rn.metrics.ids)
	rn.metrics.mu.Unlock()
	if len(ids) != 1 || ids[0] != id {
		t.Errorf("reconcile IDs given to the metrics: got %v, want [%s]", ids, id)
	}
	logs := rn.logs.String()
	for _, msg := range []string{"inside the reconcile", "reconcile failed; retrying"} {
		line := ""
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, msg) {
				line = l
			}
		}
		if !strings.Contains(line, `"reconcile_id":"`+id+`"`) {
			t.Errorf("log line %q: got %q, want reconcile_id %s", msg, line, id)
		}
	}
}

func TestControllerSuccessResetsBackoff(t *testing.T) {
	t.Parallel()
	r := newScriptedReconciler(func(ctx context.Context, key string, call int) (Result, error) {
		if call == 3 {
			return Result{}, nil
		}
		return Result{}, errors.New("flaky")
	})
	rn := startController(t, r)
	rn.q.Add("a")
	for _, d := range []time.Duration{500 * time.Millisecond, time.Second} {
		waitForCondition(t, "a retry to be scheduled", func() bool { return slices.Equal(rn.clock.Pending(), []time.Duration{d}) })
		rn.clock.Advance(d)
	}
	waitForCondition(t, "the successful run", func() bool { return r.Finished("a") == 3 && queueIdle(rn.q) })
	if got := rn.q.Retries("a"); got != 0 {
		t.Errorf("got Retries %d after success, want 0", got)
	}
	rn.q.Add("a") // fails again: backoff starts over
	waitForCondition(t, "a fresh base-delay retry", func() bool {
		return slices.Equal(rn.clock.Pending(), []time.Duration{DefaultBaseDelay})
	})
}

func TestControllerRequeueAfter(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// between runs after the first reconcile asked for 30s.
		between func(rn *runningController)
		// wantSecondRunImmediately: the second run must happen without advancing the clock.
		wantSecondRunImmediately bool
	}{
		"a key is reconciled again once RequeueAfter passes": {
			between: func(rn *runningController) {},
		},
		"an immediate Add wins over a scheduled requeue": {
			between:                  func(rn *runningController) { rn.q.Add("a") },
			wantSecondRunImmediately: true,
		},
		"an earlier AddAfter wins over a later requeue": {
			between: func(rn *runningController) {
				rn.q.AddAfter("a", 10*time.Second)
				rn.clock.Advance(10 * time.Second)
			},
			wantSecondRunImmediately: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newScriptedReconciler(func(ctx context.Context, key string, call int) (Result, error) {
				if call == 1 {
					return Result{RequeueAfter: 30 * time.Second}, nil
				}
				return Result{}, nil
			})
			rn := startController(t, r)
			rn.q.Add("a")
			waitForCondition(t, "the requeue to be scheduled", func() bool {
				return slices.Equal(rn.clock.Pending(), []time.Duration{30 * time.Second})
			})
			if got := rn.metrics.Results(OutcomeRequeueAfter); got != 1 {
				t.Errorf("got %d requeue_after results, want 1", got)
			}
			tc.between(rn)
			if !tc.wantSecondRunImmediately {
				rn.clock.Advance(30*time.Second - time.Nanosecond)
				if got := rn.q.Len() + r.Calls("a"); got != 1 {
					t.Fatalf("got key queued or re-run before RequeueAfter passed (Len+calls %d), want 1", got)
				}
				rn.clock.Advance(time.Nanosecond)
			}
			waitForCondition(t, "the second run", func() bool { return r.Finished("a") == 2 && queueIdle(rn.q) })
			if got := rn.clock.Pending(); len(got) != 0 {
				t.Errorf("got pending timers %v after the second run, want none (superseded schedule canceled)", got)
			}
			rn.clock.Advance(time.Hour)
			if got := rn.q.Len() + r.Calls("a"); got != 2 {
				t.Errorf("got Len+calls %d an hour later, want 2: no extra run", got)
			}
		})
	}
}

func TestControllerRecoversPanicsAndRetries(t *testing.T) {
	t.Parallel()
	r := newScriptedReconciler(func(ctx context.Context, key string, call int) (Result, error) {
		if call == 1 {
			var s []int
			_ = s[len(key)] // index out of range: a real runtime panic
		}
		return Result{}, nil
	})
	rn := startController(t, r)
	rn.q.Add("a")
	waitForCondition(t, "the retry after the panic", func() bool {
		return slices.Equal(rn.clock.Pending(), []time.Duration{DefaultBaseDelay})
	})
	if got := rn.metrics.Panics(); got != 1 {
		t.Errorf("got %d panics counted, want 1", got)
	}
	if got := rn.q.Retries("a"); got != 1 {
		t.Errorf("got Retries %d after a panic, want 1", got)
	}
	rn.clock.Advance(DefaultBaseDelay)
	waitForCondition(t, "the successful retry", func() bool { return r.Finished("a") == 2 && queueIdle(rn.q) })
	if got := rn.q.Retries("a"); got != 0 {
		t.Errorf("got Retries %d after recovery, want 0", got)
	}
	if logs := rn.logs.String(); !strings.Contains(logs, "index out of range") || !strings.Contains(logs, `"stack":`) {
		t.Errorf("got logs without the panic value and stack, want both:\n%s", logs)
	}
}

func TestControllerDoesNotRetryTerminalErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err error
	}{
		"a terminal error is not retried":                      {err: Terminal(errors.New("bad label"))},
		"a terminal error wrapped with context is not retried": {err: fmt.Errorf("parsing labels: %w", Terminal(errors.New("bad label")))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := newScriptedReconciler(func(ctx context.Context, key string, _ int) (Result, error) {
				return Result{RequeueAfter: time.Minute}, tc.err // Result is ignored on error
			})
			rn := startController(t, r)
			rn.q.Add("a")
			waitForCondition(t, "the terminal result", func() bool { return rn.metrics.Results(OutcomeTerminal) == 1 })
			waitForCondition(t, "the queue to settle", func() bool { return queueIdle(rn.q) })
			if got := rn.clock.Pending(); len(got) != 0 {
				t.Errorf("got pending timers %v, want none", got)
			}
			if got := rn.q.Retries("a"); got != 0 {
				t.Errorf("got Retries %d, want 0", got)
			}
			if logs := rn.logs.String(); !strings.Contains(logs, `"level":"ERROR"`) || !strings.Contains(logs, "bad label") {
				t.Errorf("got logs without an ERROR line naming the error, want one:\n%s", logs)
			}
		})
	}
}

func TestControllerRespectsWorkerBound(t *testing.T) {
	t.Parallel()
	const workers, keys = 3, 10
	release := make(chan struct{})
	r := newScriptedReconciler(func(ctx context.Context, key string, _ int) (Result, error) {
		<-release
		return Result{}, nil
	})
	rn := startController(t, r, withWorkers(workers))
	for i := range keys {
		rn.q.Add(fmt.Sprintf("c%d", i))
	}
	waitForCondition(t, "all workers busy", func() bool { now, _ := r.Running(); return now == workers })
	if got := rn.q.Len(); got != keys-workers {
		t.Errorf("got Len %d with all workers busy, want %d", got, keys-workers)
	}
	close(release)
	waitForCondition(t, "every key reconciled", func() bool {
		for i := range keys {
			if r.Finished(fmt.Sprintf("c%d", i)) != 1 {
				return false
			}
		}
		return true
	})
	if _, peak := r.Running(); peak != workers {
		t.Errorf("got peak concurrency %d, want %d", peak, workers)
	}
}

func TestControllerShutdownWaitsForInFlightReconciles(t *testing.T) {
	t.Parallel()
	sawCancel := make(chan struct{})
	release := make(chan struct{})
	r := newScriptedReconciler(func(ctx context.Context, key string, _ int) (Result, error) {
		<-ctx.Done()
		close(sawCancel)
		<-release // a slow cleanup after cancel
		return Result{}, ctx.Err()
	})
	rn := startController(t, r, withWorkers(1))
	rn.q.Add("a")
	rn.q.Add("b")
	waitForCondition(t, "a to be in flight", func() bool { return r.Calls("a") == 1 })

	rn.cancel()
	<-sawCancel
	select {
	case <-rn.stopped:
		t.Fatal("Start returned while a reconcile was still in flight")
	default:
	}
	close(release)
	select {
	case err := <-rn.stopped:
		if err != nil {
			t.Errorf("got Start error %v, want nil", err)
		}
		rn.stopped <- err // let the cleanup see it too
	case <-time.After(10 * time.Second):
		t.Fatal("Start did not return within 10s of the last reconcile finishing")
	}
	if got := r.Calls("b"); got != 0 {
		t.Errorf("got %d reconciles of b after shutdown began, want 0", got)
	}
	if got := rn.q.Retries("a"); got != 0 {
		t.Errorf("got Retries %d for a reconcile canceled by shutdown, want 0", got)
	}
	if got := rn.q.Len(); got != 2 {
		t.Errorf("got Len %d after shutdown, want 2 (a and b kept for a restart)", got)
	}
}

func TestControllerStartTwiceFails(t *testing.T) {
	t.Parallel()
	c := NewController(newScriptedReconciler(nil), NewQueue(QueueOptions{}), ControllerOptions{})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Start(ctx); err != nil {
		t.Fatalf("got first Start error %v, want nil", err)
	}
	if err := c.Start(ctx); err == nil {
		t.Errorf("got nil error from a second Start, want one")
	}
}
