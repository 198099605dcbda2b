package swarm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

// Kinds of service update, for logs and metrics.
const (
	UpdateRollout = "rollout" // new secret references
	UpdateRestart = "restart" // forced update
	UpdateRelabel = "relabel" // service labels
)

// Results of a service update, for metrics.
const (
	ResultOK          = "ok"
	ResultError       = "error"
	ResultDryRun      = "dry-run"
	ResultRateLimited = "rate-limited"
)

// rollout swaps the service's references to the newest generation when
// DecideRollout says so, within the global action limit: a rollout
// replaces every task, which is what a restart is in compose mode.
func (r *Reconciler) rollout(ctx context.Context, p *pass) error {
	if p.latest == nil {
		return nil
	}
	desired := DesiredSecrets(p.svc.Secrets, *p.latest, p.gens, Mount{Root: r.Root, Identity: p.identity, Owner: p.owner})
	plan := DecideRollout(RolloutInputs{Service: p.svc, Desired: desired, Latest: p.latest.N, Mounted: MountedGeneration(p.svc.Secrets, p.gens),
		State: p.st, Policy: r.Levels, Now: p.now})
	p.rollout = plan
	p.retryAt(plan.RetryAt)
	switch plan.Code {
	case RolloutInProgress, RolloutBackoff:
		p.rolling = true
	case RolloutGivenUp:
		p.st.Degraded = plan.Message
		r.note(p.svc.ID, "rollout", plan.Message, func(msg string) { p.log.Error(p.identity + ": " + msg) })
	case RolloutObserve:
		r.note(p.svc.ID, "rollout", plan.Message, func(msg string) { p.log.Info(p.identity+": observe mode: "+msg, keyAction, UpdateRollout) })
		r.count(UpdateRollout, ResultDryRun)
	case RolloutStart, RolloutJoin, RolloutSupersede:
		// Joining or superseding an update in flight restarts nothing more
		// than that update does: it is not held to the global action limit.
		done, err := r.update(ctx, p, UpdateRollout, plan.Change, plan.Message, plan.Code == RolloutStart)
		if err != nil || !done {
			return err
		}
		p.st = p.st.Started(p.latest.N, p.now)
	}
	if p.rolling {
		p.retryAt(p.now.Add(inProgressPoll))
	}
	return r.saveState(p)
}

// update sends one service update, within the global action limit when
// limited, and reports whether it was made; a rate-limited one is retried
// when the limit allows.
func (r *Reconciler) update(ctx context.Context, p *pass, kind string, ch dockerwatch.ServiceChange, why string, limited bool) (bool, error) {
	if r.Limiter != nil && limited {
		if wait := r.Limiter.Reserve(p.now); wait > 0 {
			p.retryAt(p.now.Add(wait))
			r.count(kind, ResultRateLimited)
			p.log.Debug("service update waits for the global action limit", keyAction, kind, keyWait, wait)
			return false, nil
		}
	}
	err := r.Engine.UpdateService(ctx, p.svc.ID, p.svc.Version, ch)
	switch {
	case errors.Is(err, dockerwatch.ErrServiceChanged):
		// Someone (a stack deploy, an operator) changed it meanwhile: decide
		// again on what it is now.
		p.retryAt(p.now.Add(100 * time.Millisecond))
		r.count(kind, ResultError)
		p.log.Info("service changed while deciding; looking again", keyAction, kind)
		return false, nil
	case err != nil:
		r.count(kind, ResultError)
		return false, fmt.Errorf("%s of service %s: %w", kind, p.svc.Name, err)
	}
	r.count(kind, ResultOK)
	p.rolling = true
	p.st.LastAction, p.st.LastActionAt = kind, p.now
	attrs := []any{keyAction, kind, keyVersion, p.svc.Version}
	if ch.UpdateOrder != "" {
		attrs = append(attrs, keyOrder, ch.UpdateOrder)
	}
	p.log.Info(fmt.Sprintf("%s: %s of service %s: %s", p.identity, kindWords(kind), p.svc.Name, why), attrs...)
	return true, nil
}

func kindWords(kind string) string {
	switch kind {
	case UpdateRestart:
		return "forced a rolling update (restart)"
	case UpdateRelabel:
		return "relabelled"
	}
	return "started a rolling update"
}

// remediate decides the ladder's action for the service and takes it.
func (r *Reconciler) remediate(ctx context.Context, p *pass, obs []TaskObservation) error {
	rem := DecideRemediation(RemediationInputs{Service: p.svc, Identity: p.identity, Policy: r.Levels, Desired: p.desired,
		Tasks: obs, Latest: p.latestN(), Rolling: p.rolling || mountsOld(obs, p.latestN()), State: p.st, Now: p.now})
	p.retryAt(rem.RetryAt)
	p.remediation = rem
	switch {
	case rem.ResetBudget:
		p.st.Attempts, p.st.NextActionAt, p.st.Relabels, p.st.Degraded = 0, time.Time{}, 0, ""
	case rem.Degraded != "":
		p.st.Degraded = rem.Degraded
		r.note(p.svc.ID, "degraded", rem.Degraded, func(msg string) { r.logLevel(p, p.identity+": degraded: "+msg) })
	}
	if rem.Action == reconcile.ActionNone {
		return r.saveState(p)
	}
	kind, ch := UpdateRestart, dockerwatch.ServiceChange{ForceUpdate: true}
	if rem.Action == reconcile.ActionRelabel {
		kind, ch = UpdateRelabel, dockerwatch.ServiceChange{Labels: rem.Labels}
	}
	ch.UpdateOrder, ch.FailureAction = updateConfigFor(p.svc)
	if rem.DryRun {
		r.count(kind, ResultDryRun)
		r.note(p.svc.ID, "dry-run", rem.Message, func(msg string) { p.log.Info(p.identity+": observe mode: would "+kind+": "+msg, keyAction, kind) })
		return r.saveState(p)
	}
	if done, err := r.update(ctx, p, kind, ch, rem.Message, true); err != nil || !done {
		return errors.Join(err, r.saveState(p))
	}
	p.st.Attempts++
	if kind == UpdateRelabel {
		p.st.Relabels++
	}
	p.st.NextActionAt = p.now.Add(r.Levels.Backoff(p.st.Attempts))
	return r.saveState(p)
}

// mountsOld reports whether a running task mounts another generation than
// the newest: the rollout that replaces it is still to come or under way.
func mountsOld(obs []TaskObservation, latest int) bool {
	for _, o := range obs {
		if o.Generation != latest {
			return true
		}
	}
	return false
}

func (p *pass) latestN() int {
	if p.latest == nil {
		return 0
	}
	return p.latest.N
}

// logLevel logs a condition an operator must act on: ERROR in production,
// WARN elsewhere.
func (r *Reconciler) logLevel(p *pass, msg string) {
	if r.Levels.Environment == reconcile.Production {
		p.log.Error(msg)
		return
	}
	p.log.Warn(msg)
}

func (r *Reconciler) count(kind, result string) {
	if r.Metrics != nil {
		r.Metrics.ServiceUpdate(kind, result)
	}
}
