package reconcile

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// recentAction is how long an action counts as the cause of a level change.
const recentAction = 2 * time.Minute

// observe probes the container, compares what it serves with what is
// desired, walks the remediation ladder and the operator guards, records
// all of it in p.rec and acts. It reports whether the container was
// replaced by a relabel.
func (r *ContainerReconciler) observe(ctx context.Context, p *pass) (bool, error) {
	p.wake(nextProbe(p.c.ID, p.now, r.probeInterval()))
	if r.probeFresh(p) {
		return false, nil
	}
	desired, err := r.Levels.DesiredFor(p.c)
	if err != nil {
		return false, Terminal(fmt.Errorf("container %s: %w", p.c.Name, err))
	}
	res, err := r.probe(ctx, p)
	if err != nil {
		return false, err
	}
	r.noteWatchReload(p, desired, res)
	plan := r.Levels.Decide(desired, r.observation(p, res))
	plan = GuardOperator(plan, res.Level, r.operatorFacts(p.c, &p.rec), p.now)
	s := step{desired: desired, res: res, plan: plan}
	r.noteGuard(p, s)
	r.noteLevel(p, s)
	if r.Metrics != nil {
		r.Metrics.Observed(Observed{Service: p.service, Container: p.c.Name, Level: res.Level, Desired: desired.Level,
			Drift: plan.Drift, BelowFloor: plan.BelowFloor, Degraded: plan.Degraded != "", Took: res.Duration})
		r.Metrics.Expiry(p.service, "served", res.ServedNotAfter)
	}
	if plan.ResetBudget {
		// A new episode: budget and backoff start over; what happened last
		// (and when the process last reloaded) stays true.
		rm := p.rec.Remediation
		p.rec.Remediation = state.RemediationState{LastAction: rm.LastAction, LastActionAt: rm.LastActionAt, ReloadedAt: rm.ReloadedAt,
			PhaseReload: rm.PhaseReload}
	}
	p.wake(plan.RetryAt)
	if plan.Action == ActionNone {
		return false, nil
	}
	return r.act(ctx, p, s)
}

// probe measures what a running container serves; one that is not
// running serves nothing.
func (r *ContainerReconciler) probe(ctx context.Context, p *pass) (probe.Result, error) {
	if p.c.State != dockerwatch.StateRunning {
		return probe.Result{Level: probe.Down}, nil
	}
	target, err := probe.TargetFor(p.c, r.SharedNetworks)
	if err != nil {
		return probe.Result{}, Terminal(fmt.Errorf("container %s: %w", p.c.Name, err))
	}
	target.Service = p.service
	target.ExpectedFingerprint = probe.Fingerprint(p.server)
	res := r.Prober.Probe(ctx, target)
	if ctx.Err() != nil {
		return probe.Result{}, fmt.Errorf("probing %s: %w", p.c.Name, ctx.Err())
	}
	return res, nil
}

// observation is the ladder's input for p and what the probe saw.
func (r *ContainerReconciler) observation(p *pass, res probe.Result) Observation {
	rm := p.rec.Remediation
	return Observation{
		Container: p.c, Probe: res, StaleProcess: p.stale,
		Attempts: rm.Attempts, NextActionAt: rm.NextActionAt, Relabels: rm.Relabels, Now: p.now,
		Rollover: r.rolloverNeed(res), PhaseReloadedIn: rm.PhaseReload, BundleWrittenAt: p.bundle.WrittenAt,
	}
}

// noteWatchReload records the evidence that a service which reloads by
// itself has loaded the bundle written last: it serves that bundle's
// certificate, at its desired level, so the prober's client certificate
// (from the CA the phase wants) was accepted under its current trust. The
// process then counts as reloaded now, for the ladder and for a CA
// rollover alike, with no restart.
func (r *ContainerReconciler) noteWatchReload(p *pass, d Desired, res probe.Result) {
	if !d.ReloadWatch || !p.stale || res.ServedFingerprint == "" || hasReason(res, probe.ServedCertNotCurrent) ||
		res.Level.Rank() < d.Level.Rank() {
		return
	}
	p.rec.Remediation.ReloadedAt = later(p.now, p.bundle.WrittenAt)
	p.stale = false
	p.rec.NeedsRestart, p.rec.NeedsRestartReason = false, ""
	p.log.Info(fmt.Sprintf("%s: serves its new bundle, reloaded without a restart", p.service),
		keyGeneration, p.bundle.Generation, keyReason, ReloadWatch)
}

// noteLevel records the observation and logs one line per level change
// and per change of degradation.
func (r *ContainerReconciler) noteLevel(p *pass, s step) {
	lv := &p.rec.Level
	d, res, plan := s.desired, s.res, s.plan
	lv.Desired, lv.Floor, lv.Drift, lv.BelowFloor = string(d.Level), string(d.Floor), plan.Drift, plan.BelowFloor
	lv.ProbeFindings, lv.ProbeMessages = nil, nil
	for _, f := range res.Findings {
		lv.ProbeFindings = append(lv.ProbeFindings, string(f.Reason))
		lv.ProbeMessages = append(lv.ProbeMessages, f.Message)
	}
	lv.LastProbeAt, lv.ProbeDuration = p.now, res.Duration
	lv.ProbedStartedAt, lv.ProbedGeneration = p.c.StartedAt, p.bundle.Generation
	if res.ServedFingerprint != "" {
		lv.ServedFingerprint, lv.ServedNotAfter = res.ServedFingerprint, res.ServedNotAfter
	}
	lv.LastPlan, lv.LastPlanCode = plan.Message, string(plan.Code)
	lv.Budget, lv.OnDrift = d.Budget, string(d.OnDrift)
	severity := r.severity(p, s)
	attrs := []any{keyObserved, string(res.Level), keyDesired, string(d.Level), keyFloor, string(d.Floor), keyFindings, lv.ProbeFindings}
	r.logLevelChange(p, s, severity, attrs)
	if plan.Degraded != p.rec.Remediation.Degraded {
		if plan.Degraded != "" {
			what := "degraded"
			if !plan.BelowFloor {
				what = "degraded (accepted: at or above the floor)"
			}
			p.log.Log(context.Background(), severity, fmt.Sprintf("%s: %s: %s", p.service, what, plan.Degraded), attrs...)
		}
		p.rec.Remediation.Degraded = plan.Degraded
	}
}

// severity matches the policy: below the floor is an ERROR in production
// and drift a WARN; a container being stopped by someone else is down
// because they asked for it.
func (r *ContainerReconciler) severity(p *pass, s step) slog.Level {
	switch {
	case !p.rec.Remediation.StoodAsideFor.IsZero() && s.res.Level == probe.Down:
		return slog.LevelInfo
	case s.plan.BelowFloor && r.Levels.Environment == Production:
		return slog.LevelError
	case s.plan.Drift:
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

// logLevelChange logs and records a change of the observed level. A
// process inside its start grace (or whose down is being confirmed) is
// still binding its ports: "down" then is not news, and logging it on
// every rebuild would bury the lines that matter. A created container is
// not probed at all; its level is not known yet.
func (r *ContainerReconciler) logLevelChange(p *pass, s step, severity slog.Level, attrs []any) {
	rec, res, plan := &p.rec, s.res, s.plan
	starting := (res.Level == probe.Down && !plan.RetryAt.IsZero() && plan.Action == ActionNone && p.c.State == dockerwatch.StateRunning) ||
		(p.c.State == dockerwatch.StateCreated && rec.ObservedLevel == "")
	old := rec.ObservedLevel
	if old == string(res.Level) || starting {
		return
	}
	from := old
	if from == "" {
		from = "unknown"
	}
	cause := "probe"
	if la := rec.Remediation.LastAction; la != "" && p.now.Sub(rec.Remediation.LastActionAt) < recentAction {
		cause = "after " + la
	}
	msg := fmt.Sprintf("%s: security level %s -> %s (desired %s) %s", p.service, from, res.Level, s.desired.Level, cause)
	if rs := res.Reasons(); plan.Drift && len(rs) > 0 {
		msg += "; findings: " + joinReasons(rs)
	}
	p.log.Log(context.Background(), severity, msg, attrs...)
	rec.AddTransition(state.Transition{At: p.now, From: from, To: string(res.Level), Cause: cause})
	rec.ObservedLevel, rec.LevelSince = string(res.Level), p.now
}

// probeFresh reports whether the last probe still tells what the
// container serves, so this pass (a resync, an event that changed
// nothing) need not probe it again: the container was settled at its
// desired level less than half a probe interval ago, by the same process,
// on the same bundle, which this pass left alone. Anything else probes.
func (r *ContainerReconciler) probeFresh(p *pass) bool {
	lv := p.rec.Level
	return p.found && p.c.State == dockerwatch.StateRunning && !p.stale && p.action == BundleKeep &&
		lv.LastPlanCode == string(PlanAtDesired) && p.now.Sub(lv.LastProbeAt) < r.probeInterval()/2 &&
		lv.ProbedStartedAt.Equal(p.c.StartedAt) && lv.ProbedGeneration == p.bundle.Generation
}

// nextProbe returns when container id is probed next: at its own phase of
// the probe interval, fixed by its ID, at least half an interval from now.
// Containers created or reconciled together (a storm, a controller
// restart, a CA change) are so spread evenly over the interval instead of
// all probing at once forever after.
func nextProbe(id string, now time.Time, interval time.Duration) time.Time {
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	period := int64(interval)
	offset := int64(h.Sum64() % uint64(period))
	base := now.Add(interval/2).UnixNano() - offset
	slot := base - base%period + period + offset
	return time.Unix(0, slot)
}

func (r *ContainerReconciler) probeInterval() time.Duration {
	if r.ProbeInterval <= 0 {
		return 30 * time.Second
	}
	return r.ProbeInterval
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
