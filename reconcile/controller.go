package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// keyPanicStack carries a recovered panic's stack trace. The worker loop's
// other log keys live in logkeys.go.
const keyPanicStack = "stack"

// Outcome is how a reconcile ended, as the worker maps it onto the queue.
// A panic is reported as OutcomeError (plus ControllerMetrics.Panic).
type Outcome string

// Outcomes.
const (
	OutcomeSuccess      Outcome = "success"
	OutcomeRequeueAfter Outcome = "requeue_after"
	OutcomeError        Outcome = "error"
	OutcomeTerminal     Outcome = "terminal"
)

// Outcomes returns every Outcome ReconcileDone may be called with, so a
// metrics implementation can pre-create its label series.
func Outcomes() []Outcome {
	return []Outcome{OutcomeSuccess, OutcomeRequeueAfter, OutcomeError, OutcomeTerminal}
}

// ControllerMetrics receives one call per finished reconcile. It is an
// interface so this package does not depend on Prometheus.
type ControllerMetrics interface {
	// ReconcileDone is called after every Reconcile with its outcome, how
	// long the call took and its reconcile ID (the one in its log lines).
	ReconcileDone(outcome Outcome, d time.Duration, reconcileID string)
	// Panic is called for every panic recovered from Reconcile.
	Panic()
}

type noopControllerMetrics struct{}

func (noopControllerMetrics) ReconcileDone(Outcome, time.Duration, string) {}
func (noopControllerMetrics) Panic()                                       {}

// DefaultWorkers bounds concurrent reconciles. Reconciles are mostly Docker
// API calls and small file writes; a few in parallel keep one slow
// container from delaying the rest without hammering the daemon.
const DefaultWorkers = 4

// ControllerOptions configures a Controller. The zero value is valid.
type ControllerOptions struct {
	// Workers is the number of keys reconciled at once. Default
	// DefaultWorkers.
	Workers int
	// Logger receives the worker loop's logs. Default: discard.
	Logger *slog.Logger
	// Metrics receives reconcile outcomes. Default: none.
	Metrics ControllerMetrics
}

// Controller runs a bounded pool of workers that take keys from a Queue and
// pass them to a Reconciler, turning each outcome into the queue action the
// Reconciler contract promises. One Queue should feed one Controller.
type Controller struct {
	r       Reconciler
	q       *Queue
	workers int
	log     *slog.Logger
	metrics ControllerMetrics
	started atomic.Bool
}

// NewController returns a controller that reconciles keys from q with r.
func NewController(r Reconciler, q *Queue, opts ControllerOptions) *Controller {
	c := &Controller{r: r, q: q, workers: opts.Workers, log: opts.Logger, metrics: opts.Metrics}
	if c.workers <= 0 {
		c.workers = DefaultWorkers
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.metrics == nil {
		c.metrics = noopControllerMetrics{}
	}
	return c
}

// Start runs the workers and blocks until ctx ends. It then stops handing
// out keys, waits for in-flight reconciles (which see ctx canceled) and
// returns nil. Keys still queued stay in the queue. Start may be called only
// once.
func (c *Controller) Start(ctx context.Context) error {
	if !c.started.CompareAndSwap(false, true) {
		return errors.New("reconcile controller already started")
	}
	// Blocked workers sleep on the queue's condition variable, which knows
	// nothing of ctx; wake them when it ends.
	stopWake := context.AfterFunc(ctx, c.q.wake)
	defer stopWake()

	var wg sync.WaitGroup
	for range c.workers {
		wg.Go(func() {
			for c.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// processNext reconciles one key; false means the controller is stopping.
func (c *Controller) processNext(ctx context.Context) bool {
	key, ok := c.q.get(ctx)
	if !ok {
		return false
	}
	defer c.q.done(key)
	c.handle(ctx, key)
	return true
}

// handle is the worker switch: it maps a Reconcile outcome onto the queue.
// It mints the reconcile's ID and logger, so its own line about the
// outcome carries the same ID as the reconcile's lines.
func (c *Controller) handle(ctx context.Context, key string) {
	id := newReconcileID()
	log := c.log.With(keyReconcileID, id, keyContainerID, dockerwatch.ShortID(key))
	start := c.q.clock.Now()
	res, err := c.reconcile(withReconcile(ctx, id, log), key)
	elapsed := c.q.clock.Now().Sub(start)
	done := func(o Outcome) { c.metrics.ReconcileDone(o, elapsed, id) }

	switch {
	case err != nil && IsTerminal(err):
		c.q.forget(key)
		done(OutcomeTerminal)
		log.Error("reconcile failed permanently; not retrying until the key is added again", keyError, err)
	case err != nil && ctx.Err() != nil:
		// Shutting down: the failure is most likely the cancellation itself,
		// so keep the key queued without charging it a retry.
		c.q.Add(key)
		done(OutcomeError)
		log.Debug("reconcile interrupted by shutdown", keyError, err)
	case err != nil:
		delay, retries := c.q.addRateLimited(key)
		done(OutcomeError)
		log.Warn("reconcile failed; retrying", keyError, err, keyRetries, retries, keyRequeue, delay)
	case res.RequeueAfter > 0:
		c.q.forget(key)
		c.q.AddAfter(key, res.RequeueAfter)
		done(OutcomeRequeueAfter)
		log.Debug("reconciled; scheduled again", keyRequeue, res.RequeueAfter)
	default:
		c.q.forget(key)
		done(OutcomeSuccess)
		log.Debug("reconciled")
	}
}

// reconcile calls the Reconciler, turning a panic into an error so one bad
// container can't take the controller down; the key is then retried with
// backoff like any other failure.
func (c *Controller) reconcile(ctx context.Context, key string) (res Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = Result{}, fmt.Errorf("panic in reconcile of %s: %v", key, p)
			c.metrics.Panic()
			log := LoggerFrom(ctx)
			if log == nil {
				log = c.log.With(keyKey, key)
			}
			log.Error("reconcile panicked", keyError, err, keyPanicStack, string(debug.Stack()))
		}
	}()
	return c.r.Reconcile(ctx, key)
}
