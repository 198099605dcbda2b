package reconcile

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"
)

// Default retry backoff: the first retry comes quickly enough to ride out a
// container that is still starting, the cap keeps a permanently broken
// container from being polled more than every few minutes.
const (
	DefaultBaseDelay = 500 * time.Millisecond
	DefaultMaxDelay  = 5 * time.Minute
	// DefaultJitter spreads retries of keys that failed together (a daemon
	// hiccup fails every container at once) so they don't retry in lockstep.
	DefaultJitter = 0.1
)

// Clock is the queue's view of time. Tests inject a manual clock so delays
// are driven without sleeping.
type Clock interface {
	Now() time.Time
	// AfterFunc calls f in its own goroutine (or, for a test clock, when
	// time is advanced) once d has elapsed. The returned stop func cancels
	// the call and reports whether it did so before f ran, like
	// (*time.Timer).Stop.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// QueueOptions configures a Queue. The zero value is valid.
type QueueOptions struct {
	// BaseDelay is the delay before the first retry of a failing key; each
	// further consecutive failure doubles it. Default DefaultBaseDelay.
	BaseDelay time.Duration
	// MaxDelay caps the retry delay, jitter included. Default DefaultMaxDelay.
	MaxDelay time.Duration
	// Jitter is the fraction of a retry delay that is randomly shaved off:
	// the delay lies in (d*(1-Jitter), d]. Shaving rather than adding keeps
	// MaxDelay a true maximum. 0 means DefaultJitter; negative disables it.
	Jitter float64
	// Clock drives retry and scheduled delays. Default: the real clock.
	Clock Clock
}

// Queue is a de-duplicating, keyed work queue with per-key retry backoff
// and scheduled adds, in the style of client-go's workqueue but with only
// the standard library.
//
// Invariants (all under mu):
//   - a key is in queue[head:] at most once, and only if it is dirty and not
//     processing;
//   - a key added while processing is only marked dirty, and done moves it
//     to queue, so one key never runs twice at once and any number of adds
//     during a run collapse into one re-run;
//   - a key has at most one pending scheduled add (waiting), for the
//     earliest time asked for; an immediate add cancels it.
//
// Add is O(1) and never blocks on workers: it is called from the Docker
// event receive loop, which the daemon drops if it stalls for ~100ms.
type Queue struct {
	clock     Clock
	baseDelay time.Duration
	maxDelay  time.Duration
	jitter    float64
	// randFloat returns a value in [0, 1). A seam so tests can pin jitter.
	randFloat func() float64

	mu         sync.Mutex
	cond       *sync.Cond // signaled when queue gains a key or a ctx ends
	queue      []string   // ready keys are queue[head:]
	head       int
	dirty      map[string]struct{}
	processing map[string]struct{}
	waiting    map[string]*queueWaiter
	retries    map[string]int
}

// queueWaiter is one scheduled add. Its identity, not its key, tells the
// timer callback whether it was superseded.
type queueWaiter struct {
	at   time.Time
	stop func() bool
}

// NewQueue returns an empty queue.
func NewQueue(opts QueueOptions) *Queue {
	q := &Queue{
		clock:      opts.Clock,
		baseDelay:  opts.BaseDelay,
		maxDelay:   opts.MaxDelay,
		jitter:     opts.Jitter,
		randFloat:  rand.Float64,
		dirty:      make(map[string]struct{}),
		processing: make(map[string]struct{}),
		waiting:    make(map[string]*queueWaiter),
		retries:    make(map[string]int),
	}
	q.cond = sync.NewCond(&q.mu)
	if q.clock == nil {
		q.clock = realClock{}
	}
	if q.baseDelay <= 0 {
		q.baseDelay = DefaultBaseDelay
	}
	if q.maxDelay <= 0 {
		q.maxDelay = DefaultMaxDelay
	}
	if q.maxDelay < q.baseDelay {
		q.maxDelay = q.baseDelay
	}
	switch {
	case q.jitter == 0:
		q.jitter = DefaultJitter
	case q.jitter < 0:
		q.jitter = 0
	case q.jitter > 1:
		q.jitter = 1
	}
	return q
}

// Add queues key for a reconcile now. It is a no-op if key is already
// queued; if key is being reconciled, it is re-queued once that run ends.
// A pending scheduled add for key is canceled, since this one is sooner.
func (q *Queue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *Queue) addLocked(key string) {
	if w, ok := q.waiting[key]; ok {
		w.stop()
		delete(q.waiting, key)
	}
	if _, ok := q.dirty[key]; ok {
		return
	}
	q.dirty[key] = struct{}{}
	if _, ok := q.processing[key]; ok {
		return
	}
	q.queue = append(q.queue, key)
	q.cond.Signal()
}

// AddAfter queues key once d has elapsed. The earliest request wins: it is a
// no-op if key is already due now (queued, or dirty while in flight) or is
// scheduled no later than now+d, and it replaces a later schedule.
// d <= 0 is Add.
func (q *Queue) AddAfter(key string, d time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addAfterLocked(key, d)
}

func (q *Queue) addAfterLocked(key string, d time.Duration) {
	if d <= 0 {
		q.addLocked(key)
		return
	}
	if _, ok := q.dirty[key]; ok {
		return
	}
	at := q.clock.Now().Add(d)
	if w, ok := q.waiting[key]; ok {
		if !w.at.After(at) {
			return
		}
		w.stop()
	}
	w := &queueWaiter{at: at}
	// The callback takes mu, so it cannot observe w before stop is set.
	w.stop = q.clock.AfterFunc(d, func() { q.fire(key, w) })
	q.waiting[key] = w
}

// fire runs when a scheduled add comes due.
func (q *Queue) fire(key string, w *queueWaiter) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.waiting[key] != w {
		return // canceled or superseded; stop lost the race with the timer
	}
	delete(q.waiting, key)
	q.addLocked(key)
}

// Len reports how many keys are ready and waiting for a worker. It excludes
// keys being reconciled and keys scheduled for later.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.queue) - q.head
}

// Retries reports how many consecutive failed reconciles key has had since
// it last succeeded (0 if none). It drives the backoff and status output.
func (q *Queue) Retries(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.retries[key]
}

// get hands out the next ready key, marking it in flight; the caller must
// call done(key) afterwards. It blocks until a key is ready or ctx ends, and
// returns ok=false once ctx has ended even if keys are ready: shutdown stops
// handing out work. The caller arranges for wake to run when ctx ends.
func (q *Queue) get(ctx context.Context) (key string, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for q.head == len(q.queue) && ctx.Err() == nil {
		q.cond.Wait()
	}
	if ctx.Err() != nil {
		return "", false
	}
	key = q.queue[q.head]
	q.queue[q.head] = "" // let the string be collected
	q.head++
	q.compactLocked()
	q.processing[key] = struct{}{}
	delete(q.dirty, key)
	return key, true
}

// compactLocked reclaims the consumed front of queue so a long-lived queue
// reuses one backing array instead of allocating as it slides forward.
func (q *Queue) compactLocked() {
	switch {
	case q.head == len(q.queue):
		q.queue, q.head = q.queue[:0], 0
	case q.head >= 1024 && q.head*2 >= len(q.queue):
		n := copy(q.queue, q.queue[q.head:])
		clear(q.queue[n:])
		q.queue, q.head = q.queue[:n], 0
	}
}

// wake releases every get blocked in Wait so it can notice its ctx ended.
func (q *Queue) wake() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.cond.Broadcast()
}

// done ends key's run and re-queues it if it was added meanwhile.
func (q *Queue) done(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if _, ok := q.dirty[key]; ok {
		q.queue = append(q.queue, key)
		q.cond.Signal()
	}
}

// forget resets key's backoff after a success (or a terminal failure).
func (q *Queue) forget(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.retries, key)
}

// addRateLimited records a failure of key and schedules a retry after its
// backoff delay. It returns the delay asked for and the new failure count.
// An earlier scheduled or immediate add still wins.
func (q *Queue) addRateLimited(key string) (delay time.Duration, retries int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.retries[key]
	q.retries[key] = n + 1
	delay = q.retryDelay(n)
	q.addAfterLocked(key, delay)
	return delay, n + 1
}

// retryDelay is BaseDelay*2^failures capped at MaxDelay, minus jitter.
func (q *Queue) retryDelay(failures int) time.Duration {
	d := q.baseDelay
	// Doubling stops at the cap, so a key failing for days can't overflow.
	for i := 0; i < failures && d < q.maxDelay; i++ {
		d *= 2
	}
	d = min(d, q.maxDelay)
	if q.jitter > 0 {
		d -= time.Duration(q.jitter * q.randFloat() * float64(d))
	}
	return max(d, time.Nanosecond)
}
