package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// recentAction is how long an action counts as the cause of a level change.
const recentAction = 2 * time.Minute

// actionSlack is added to the stop timeout to bound one Docker action, so
// a hung engine call cannot hold a worker (and the service lock) forever.
const actionSlack = 30 * time.Second

// observe probes c, compares what it serves with what is desired, walks the
// remediation ladder and records all of it in rec. It returns when to look
// again (zero: no earlier than the periodic probe) and whether c was
// replaced by a relabel.
func (r *ContainerReconciler) observe(ctx context.Context, c dockerwatch.Container, service string, parsed *certs.ParsedBundle,
	stale bool, rec *state.Record, now time.Time, log *slog.Logger) (time.Time, bool, error) {
	next := now.Add(r.probeInterval())
	desired, err := r.Levels.DesiredFor(c)
	if err != nil {
		return time.Time{}, false, Terminal(fmt.Errorf("container %s: %w", c.Name, err))
	}
	result := probe.Result{Level: probe.Down}
	if c.State == dockerwatch.StateRunning {
		target, err := probe.TargetFor(c, r.SharedNetworks)
		if err != nil {
			return time.Time{}, false, Terminal(fmt.Errorf("container %s: %w", c.Name, err))
		}
		target.Service = service
		target.ExpectedFingerprint = probe.Fingerprint(parsed.ServerCert)
		result = r.Prober.Probe(ctx, target)
		if ctx.Err() != nil {
			return time.Time{}, false, fmt.Errorf("probing %s: %w", c.Name, ctx.Err())
		}
	}
	if r.Metrics != nil {
		r.Metrics.Observed(service, c.Name, result.Level, desired.Level, result.Level.Rank() < desired.Level.Rank(), result.Duration)
		r.Metrics.Expiry(service, "served", result.ServedNotAfter)
	}

	plan := r.Levels.Decide(desired, Observation{
		Container: c, Probe: result, StaleProcess: stale,
		Attempts: rec.Remediation.Attempts, NextActionAt: rec.Remediation.NextActionAt,
		Relabels: rec.Remediation.Relabels, Now: now,
		Rollover: r.rolloverNeed(result), PhaseReloadedIn: rec.Remediation.PhaseReload,
	})
	plan, guard := GuardOperator(plan, result.Level, r.operatorFacts(c, rec), now)
	r.noteGuard(c, service, result.Level, guard, plan, rec, now, log)
	r.noteLevel(c, service, desired, result, plan, rec, now, log)
	if plan.ResetBudget {
		// A new episode: budget and backoff start over; what happened last
		// (and when the process last reloaded) stays true.
		rm := rec.Remediation
		rec.Remediation = state.RemediationState{LastAction: rm.LastAction, LastActionAt: rm.LastActionAt, ReloadedAt: rm.ReloadedAt,
			PhaseReload: rm.PhaseReload}
	}
	if !plan.RetryAt.IsZero() && plan.RetryAt.Before(next) {
		next = plan.RetryAt
	}
	if plan.Action == ActionNone {
		return next, false, nil
	}
	return r.act(ctx, c, service, desired, result, plan, rec, now, next, log)
}

// noteLevel records the observation and logs one line per level change and
// per change of degradation, at a severity that matches the policy: below
// the floor is an ERROR in production and a WARN in development.
func (r *ContainerReconciler) noteLevel(c dockerwatch.Container, service string, d Desired, res probe.Result, plan Plan,
	rec *state.Record, now time.Time, log *slog.Logger) {
	lv := &rec.Level
	lv.Desired, lv.Floor, lv.Drift, lv.BelowFloor = string(d.Level), string(d.Floor), plan.Drift, plan.BelowFloor
	lv.ProbeFindings, lv.ProbeMessages = nil, nil
	for _, f := range res.Findings {
		lv.ProbeFindings = append(lv.ProbeFindings, string(f.Reason))
		lv.ProbeMessages = append(lv.ProbeMessages, f.Message)
	}
	lv.LastProbeAt, lv.ProbeDuration = now, res.Duration
	if res.ServedFingerprint != "" {
		lv.ServedFingerprint, lv.ServedNotAfter = res.ServedFingerprint, res.ServedNotAfter
	}
	lv.LastPlan = plan.Reason
	lv.Budget, lv.OnDrift = d.Budget, string(d.OnDrift)

	severity := slog.LevelInfo
	switch {
	case plan.BelowFloor && r.Levels.Environment == Production:
		severity = slog.LevelError
	case plan.Drift:
		severity = slog.LevelWarn
	}
	attrs := []any{keyObserved, string(res.Level), keyDesired, string(d.Level), keyFloor, string(d.Floor), keyFindings, lv.ProbeFindings}
	// A process inside its start grace is still binding its ports; "down"
	// then is not news, and logging it on every rebuild would bury the
	// lines that matter.
	// A created container is not probed at all; its level is not known yet.
	starting := (res.Level == probe.Down && !plan.RetryAt.IsZero() && plan.Action == ActionNone && c.State == dockerwatch.StateRunning) ||
		(c.State == dockerwatch.StateCreated && rec.ObservedLevel == "")
	if stopping := !rec.Remediation.StoodAsideFor.IsZero() && res.Level == probe.Down; stopping {
		// Being stopped by someone else: down is what they asked for.
		severity = slog.LevelInfo
	}
	if old := rec.ObservedLevel; old != string(res.Level) && !starting {
		from := old
		if from == "" {
			from = "unknown"
		}
		cause := "probe"
		if la := rec.Remediation.LastAction; la != "" && now.Sub(rec.Remediation.LastActionAt) < recentAction {
			cause = "after " + la
		}
		msg := fmt.Sprintf("%s: security level %s -> %s (desired %s) %s", service, from, res.Level, d.Level, cause)
		if rs := res.Reasons(); plan.Drift && len(rs) > 0 {
			msg += "; findings: " + joinReasons(rs)
		}
		log.Log(context.Background(), severity, msg, attrs...)
		rec.AddTransition(state.Transition{At: now, From: from, To: string(res.Level), Cause: cause})
		rec.ObservedLevel, rec.LevelSince = string(res.Level), now
	}
	if plan.Degraded != rec.Remediation.Degraded {
		if plan.Degraded != "" {
			what := "degraded"
			if !plan.BelowFloor {
				what = "degraded (accepted: at or above the floor)"
			}
			log.Log(context.Background(), severity, fmt.Sprintf("%s: %s: %s", service, what, plan.Degraded), attrs...)
		}
		rec.Remediation.Degraded = plan.Degraded
	}
}

// act carries out one remediation step, within the global rate limit, or
// only logs it in observe mode. Budget and backoff advance either way, so
// observe mode shows the same cadence enforcement would have.
func (r *ContainerReconciler) act(ctx context.Context, c dockerwatch.Container, service string, d Desired, res probe.Result,
	plan Plan, rec *state.Record, now, next time.Time, log *slog.Logger) (time.Time, bool, error) {
	action := string(plan.Action)
	if plan.Action == ActionSignal {
		action = "signal " + d.ReloadSignal
	}
	if plan.DryRun {
		log.Warn(fmt.Sprintf("%s: would %s (observe mode; no change made): %s", service, action, plan.Reason),
			keyAction, string(plan.Action), keyReason, plan.Reason)
		r.count(plan.Action, "dry-run")
		r.advance(rec, plan, "dry-run", now)
		return earlier(next, rec.Remediation.NextActionAt), false, nil
	}
	// The container may have changed while we waited for the service lock
	// or probed (up to a few seconds): a user may have stopped it, and a
	// Docker restart would start it again. Act only on what is still true.
	cur, err := r.inspect(ctx, c.ID)
	if err != nil || cur.State != dockerwatch.StateRunning || !cur.StartedAt.Equal(c.StartedAt) {
		log.Debug("container changed before the action; looking again", keyAction, string(plan.Action))
		return now.Add(minRequeue), false, nil
	}
	// The probe may have taken seconds; book the global slot (and the
	// backoff) from the time of the action, not of the reconcile's start,
	// or two restarts could land close together.
	now = r.now()
	if r.Limiter != nil {
		if wait := r.Limiter.Reserve(now); wait > 0 {
			log.Info(fmt.Sprintf("%s: %s deferred by the global action rate limit", service, action), keyRequeue, wait)
			r.count(plan.Action, "rate-limited")
			return earlier(next, now.Add(wait)), false, nil
		}
	}
	// A stop by someone else wins over an action already decided: the
	// events of a `docker stop` may arrive while the probe ran.
	if f := r.operatorFacts(cur, rec); f.Stopping {
		_, guard := GuardOperator(plan, res.Level, f, now)
		r.noteGuard(cur, service, res.Level, guard, plan, rec, now, log)
		return next, false, nil
	}
	// Spend the budget first: if the controller crashed or the state could
	// not be written after the action, an unrecorded action must not be
	// repeatable without bound.
	r.advance(rec, plan, "started", now)
	if err := r.Records.Put(*rec); err != nil {
		return time.Time{}, false, fmt.Errorf("saving remediation state of %s before %s: %w", c.Name, action, err)
	}
	// The action runs to completion even if the controller is shutting
	// down: a recreate cut off halfway leaves a stopped service.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.stopTimeout()+actionSlack)
	defer cancel()
	replaced := false
	switch plan.Action {
	case ActionRestart:
		err = r.Actions.Restart(actx, c.ID, r.stopTimeout())
	case ActionSignal:
		err = r.Actions.Signal(actx, c.ID, d.ReloadSignal)
		if err == nil {
			// The process reloads after the signal, which comes after the
			// bundle write: never record a reload older than that write
			// (now was taken before it, in the same reconcile).
			rec.Remediation.ReloadedAt = later(r.now(), rec.Bundle.WrittenAt)
		}
	case ActionRelabel:
		var newID string
		newID, err = r.Actions.Recreate(actx, c.ID, r.relabels(res), nil, r.stopTimeout())
		// A replacement that is in place counts even if the old container
		// could not be removed (it keeps a temporary name; logged below).
		replaced = newID != ""
		if replaced {
			log.Info(fmt.Sprintf("%s: relabelled as %s (new container %s)", service, res.Level, dockerwatch.ShortID(newID)))
		}
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	r.count(plan.Action, result)
	rec.History[len(rec.History)-1].Result = result
	if err != nil && replaced {
		log.Warn(fmt.Sprintf("%s: relabelled, but the old container was left behind", service), keyError, err)
		return next, true, nil
	}
	if err != nil {
		// Logged here with its cause; the next attempt waits out the
		// backoff like any other, so a failing restart cannot loop.
		log.Error(fmt.Sprintf("%s: %s failed: %v", service, action, err), keyAction, string(plan.Action), keyError, err)
		return earlier(next, rec.Remediation.NextActionAt), false, nil
	}
	log.Warn(fmt.Sprintf("%s: %s (%s): %s", service, action, attemptNote(plan, rec.Remediation.Attempts, d.Budget), plan.Reason),
		keyAction, string(plan.Action), keyReason, plan.Reason)
	// Look again once the process has had its start grace.
	return earlier(next, now.Add(r.Levels.StartGrace+time.Second)), replaced, nil
}

// advance moves the episode's budget and backoff for an action. A relabel
// is counted apart (one per episode) but waits out the backoff too, so a
// failing one cannot be retried every second.
func (r *ContainerReconciler) advance(rec *state.Record, plan Plan, result string, now time.Time) {
	rm := &rec.Remediation
	spend(rm, plan)
	rm.NextActionAt = now.Add(r.Levels.Backoff(max(rm.Attempts, 1)))
	rm.LastAction, rm.LastActionAt = string(plan.Action), now
	rec.AddEvent(state.Event{At: now, Action: string(plan.Action), Result: result, Reason: plan.Reason})
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

func (r *ContainerReconciler) count(a Action, result string) {
	if r.Metrics != nil {
		r.Metrics.Remediated(string(a), result)
	}
}

func (r *ContainerReconciler) probeInterval() time.Duration {
	if r.ProbeInterval <= 0 {
		return 30 * time.Second
	}
	return r.ProbeInterval
}

func (r *ContainerReconciler) stopTimeout() time.Duration {
	if r.StopTimeout <= 0 {
		return 10 * time.Second
	}
	return r.StopTimeout
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func earlier(a, b time.Time) time.Time {
	if b.IsZero() || (!a.IsZero() && a.Before(b)) {
		return a
	}
	return b
}
