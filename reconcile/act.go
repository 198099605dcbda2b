package reconcile

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// ActionResult is the outcome of one remediation action, as counted in
// metrics and written in a record's history.
type ActionResult string

// Action results.
const (
	ResultOK          ActionResult = "ok"
	ResultError       ActionResult = "error"
	ResultDryRun      ActionResult = "dry-run"      // observe mode: logged, not taken
	ResultRateLimited ActionResult = "rate-limited" // deferred by the global limit
	// ResultStarted is written to the history before the action runs, and
	// replaced by its outcome after.
	ResultStarted ActionResult = "started"
)

// ActionResults are the results a metric counts, for pre-created series.
func ActionResults() []ActionResult {
	return []ActionResult{ResultOK, ResultError, ResultDryRun, ResultRateLimited}
}

// actionSlack is added to the stop timeout to bound one Docker action, so
// a hung engine call cannot hold a worker (and the service lock) forever.
const actionSlack = 30 * time.Second

// act carries out one remediation step, within the global rate limit, or
// only logs it in observe mode. Budget and backoff advance either way, so
// observe mode shows the same cadence enforcement would have. It reports
// whether the container was replaced by a relabel.
func (r *ContainerReconciler) act(ctx context.Context, p *pass, s step) (bool, error) {
	if s.plan.DryRun {
		p.log.Warn(fmt.Sprintf("%s: would %s (observe mode; no change made): %s", p.service, actionName(s), s.plan.Message),
			keyAction, string(s.plan.Action), keyReason, string(s.plan.Code))
		r.count(s.plan.Action, ResultDryRun)
		r.advance(&p.rec, s.plan, ResultDryRun, p.now)
		p.wake(p.rec.Remediation.NextActionAt)
		return false, nil
	}
	if !r.clearToAct(ctx, p, s) {
		return false, nil
	}
	// Spend the budget first: if the controller crashed or the state could
	// not be written after the action, an unrecorded action must not be
	// repeatable without bound.
	r.advance(&p.rec, s.plan, ResultStarted, p.now)
	if err := r.Records.Put(p.rec); err != nil {
		return false, fmt.Errorf("saving remediation state of %s before %s: %w", p.c.Name, actionName(s), err)
	}
	replaced, err := r.perform(ctx, p, s)
	return r.finish(p, s, replaced, err), nil
}

// clearToAct checks, right before the action, that it is still wanted:
// the container may have changed while the service lock was awaited or
// the probe ran (a user may have stopped it, and a Docker restart would
// start it again), the global limit may defer it, and someone else may
// have begun to stop it. It also books the action's time in p.now: the
// global slot and the backoff count from the action, not from the
// reconcile's start, or two restarts could land close together.
func (r *ContainerReconciler) clearToAct(ctx context.Context, p *pass, s step) bool {
	cur, err := r.inspect(ctx, p.c.ID)
	if err != nil || cur.State != dockerwatch.StateRunning || !cur.StartedAt.Equal(p.c.StartedAt) {
		p.log.Debug("container changed before the action; looking again", keyAction, string(s.plan.Action))
		p.wake(p.now.Add(minRequeue))
		return false
	}
	p.now = r.now()
	if r.Limiter != nil {
		if wait := r.Limiter.Reserve(p.now); wait > 0 {
			p.log.Info(fmt.Sprintf("%s: %s deferred by the global action rate limit", p.service, actionName(s)), keyRequeue, wait)
			r.count(s.plan.Action, ResultRateLimited)
			p.wake(p.now.Add(wait))
			return false
		}
	}
	// A stop by someone else wins over an action already decided: the
	// events of a `docker stop` may arrive while the probe ran.
	if f := r.operatorFacts(cur, &p.rec); f.Stopping {
		r.noteGuard(p, step{desired: s.desired, res: s.res, plan: GuardOperator(s.plan, s.res.Level, f, p.now)})
		return false
	}
	return true
}

// perform makes the Docker call. The action runs to completion even if
// the controller is shutting down: a recreate cut off halfway leaves a
// stopped service.
func (r *ContainerReconciler) perform(ctx context.Context, p *pass, s step) (replaced bool, err error) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.stopTimeout()+actionSlack)
	defer cancel()
	switch s.plan.Action {
	case ActionRestart:
		return false, r.Actions.Restart(actx, p.c.ID, r.stopTimeout())
	case ActionSignal:
		if err := r.Actions.Signal(actx, p.c.ID, s.desired.ReloadSignal); err != nil {
			return false, err
		}
		// The process reloads after the signal, which comes after the
		// bundle write: never record a reload older than that write (now
		// was taken before it, in the same reconcile).
		p.rec.Remediation.ReloadedAt = later(r.now(), p.rec.Bundle.WrittenAt)
		return false, nil
	case ActionRelabel:
		newID, err := r.Actions.Recreate(actx, p.c.ID, r.relabels(s.res), nil, r.stopTimeout())
		// A replacement that is in place counts even if the old container
		// could not be removed (it keeps a temporary name; logged below).
		if newID != "" {
			p.log.Info(fmt.Sprintf("%s: relabelled as %s (new container %s)", p.service, s.res.Level, dockerwatch.ShortID(newID)))
		}
		return newID != "", err
	}
	return false, fmt.Errorf("unknown action %q", s.plan.Action)
}

// finish counts and logs the action's outcome and schedules the next
// look. A failed action waits out the backoff like any other, so a failing
// restart cannot loop. It returns whether the container was replaced.
func (r *ContainerReconciler) finish(p *pass, s step, replaced bool, err error) bool {
	result := ResultOK
	if err != nil {
		result = ResultError
	}
	r.count(s.plan.Action, result)
	p.rec.History[len(p.rec.History)-1].Result = string(result)
	switch {
	case err != nil && replaced:
		p.log.Warn(fmt.Sprintf("%s: relabelled, but the old container was left behind", p.service), keyError, err)
	case err != nil:
		p.log.Error(fmt.Sprintf("%s: %s failed: %v", p.service, actionName(s), err), keyAction, string(s.plan.Action), keyError, err)
		p.wake(p.rec.Remediation.NextActionAt)
	default:
		p.log.Warn(fmt.Sprintf("%s: %s (%s): %s", p.service, actionName(s), attemptNote(s.plan, p.rec.Remediation.Attempts, s.desired.Budget), s.plan.Message),
			keyAction, string(s.plan.Action), keyReason, string(s.plan.Code))
		// Look again once the process has had its start grace.
		p.wake(p.now.Add(r.Levels.StartGrace + time.Second))
	}
	return replaced
}

func actionName(s step) string {
	if s.plan.Action == ActionSignal {
		return "signal " + s.desired.ReloadSignal
	}
	return string(s.plan.Action)
}

// advance moves the episode's budget and backoff for an action. A relabel
// is counted apart (one per episode) but waits out the backoff too, so a
// failing one cannot be retried every second.
func (r *ContainerReconciler) advance(rec *state.Record, plan Plan, result ActionResult, now time.Time) {
	rm := &rec.Remediation
	spend(rm, plan)
	rm.NextActionAt = now.Add(r.Levels.Backoff(max(rm.Attempts, 1)))
	rm.LastAction, rm.LastActionAt = string(plan.Action), now
	rec.AddEvent(state.Event{At: now, Action: string(plan.Action), Result: string(result), Reason: plan.Message})
}

// relabels are the labels a relabelled container carries: what was
// observed, why it drifted, and the operator's quarantine labels.
func (r *ContainerReconciler) relabels(res probe.Result) map[string]string {
	drift := "level-below-desired"
	if rs := res.Reasons(); len(rs) > 0 {
		drift = joinReasons(rs)
	}
	labels := map[string]string{LabelObserved: string(res.Level), LabelDrift: drift}
	maps.Copy(labels, r.Levels.Quarantine)
	return labels
}

func (r *ContainerReconciler) count(a Action, result ActionResult) {
	if r.Metrics != nil {
		r.Metrics.Remediated(string(a), string(result))
	}
}

func (r *ContainerReconciler) stopTimeout() time.Duration {
	if r.StopTimeout <= 0 {
		return 10 * time.Second
	}
	return r.StopTimeout
}
