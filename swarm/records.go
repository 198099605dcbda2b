package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// record writes one state record per live task (meant to run, or still
// running while it stops), keyed by task ID, so the status API,
// `controller status` and the CA rollover see tasks as they see
// containers: a replaced task that is still stopping still calls its peers
// with its old bundle, and a rollover phase must wait for it to exit.
// Records of the service's other tasks go. It also publishes the pass to
// the status API and metrics.
func (r *Reconciler) record(p *pass, obs []TaskObservation) error {
	probed := map[string]TaskObservation{}
	for _, o := range obs {
		probed[o.Task.ID] = o
	}
	keep := liveIDs(p.tasks)
	for _, t := range p.tasks {
		if !t.Live() {
			continue
		}
		rec, _, err := r.Store.Get(t.ID)
		if err != nil {
			return fmt.Errorf("reading the record of task %s: %w", t.ID, err)
		}
		o, ok := probed[t.ID]
		r.fillRecord(p, &rec, t, o, ok)
		if err := r.Store.Put(rec); err != nil {
			return fmt.Errorf("recording task %s: %w", rec.ContainerName, err)
		}
	}
	r.publish(p, obs)
	return r.dropRecords(p, keep)
}

// fillRecord brings rec up to date with task t and, when it was probed,
// with the probe o.
func (r *Reconciler) fillRecord(p *pass, rec *state.Record, t dockerwatch.Task, o TaskObservation, probed bool) {
	gen := MountedGeneration(t.Secrets, p.gens)
	rec.ContainerID, rec.ContainerName, rec.Service, rec.Project = t.ID, taskName(p.svc, t), p.identity, p.svc.Stack
	rec.Node = t.NodeID
	rec.DNSNames = p.wanted.DNSNames
	rec.Bundle = bundleRecord(p.gens, gen, rec.Bundle)
	rec.NeedsRestart, rec.NeedsRestartReason = gen != p.latestN(), ""
	if rec.NeedsRestart {
		rec.NeedsRestartReason = fmt.Sprintf("mounts generation %d; a rolling update brings generation %d", gen, p.latestN())
	}
	rec.Identity = state.IdentityRecord{Findings: identityFindings(p.findings)}
	st := p.st
	rec.Remediation = state.RemediationState{Attempts: st.Attempts, NextActionAt: st.NextActionAt, Degraded: st.Degraded,
		LastAction: st.LastAction, LastActionAt: st.LastActionAt, Relabels: st.Relabels}
	if st.LastActionAt.Equal(p.now) && st.LastAction != "" {
		rec.AddEvent(state.Event{At: p.now, Action: st.LastAction, Result: ResultOK, Reason: p.actionReason()})
	}
	if probed {
		r.observeLevel(p, rec, o)
	}
}

// observeLevel records what the probe of one task saw, and logs a change
// of level in one line.
func (r *Reconciler) observeLevel(p *pass, rec *state.Record, o TaskObservation) {
	res, plan := o.Probe, p.remediation.Plans[o.Task.ID]
	if observed := string(res.Level); rec.ObservedLevel != observed {
		cause := strings.Join(reasons(res), ",")
		if rec.ObservedLevel != "" {
			p.log.Info(fmt.Sprintf("%s: task %s on node %s: %s -> %s", p.identity, rec.ContainerName, o.Task.NodeID, rec.ObservedLevel, observed),
				keyTask, o.Task.ID, keyNode, o.Task.NodeID, keyObserved, observed, keyFindings, cause)
		}
		rec.AddTransition(state.Transition{At: res.At, From: rec.ObservedLevel, To: observed, Cause: cause})
		rec.ObservedLevel, rec.LevelSince = observed, res.At
	}
	msgs := make([]string, len(res.Findings))
	for i, f := range res.Findings {
		msgs[i] = f.Message
	}
	rec.Level = state.LevelRecord{
		Desired: string(p.desired.Level), Floor: string(p.desired.Floor),
		Drift: res.Level.Rank() < p.desired.Level.Rank(), BelowFloor: res.Level.Rank() < p.desired.Floor.Rank(),
		ProbeFindings: reasons(res), ProbeMessages: msgs, LastProbeAt: res.At, ProbeDuration: res.Duration,
		ServedFingerprint: res.ServedFingerprint, ServedNotAfter: res.ServedNotAfter,
		LastPlan: plan.Message, LastPlanCode: string(plan.Code), Budget: p.desired.Budget, OnDrift: string(p.desired.OnDrift),
	}
	if p.remediation.Code == PlanRollingUpdate {
		rec.Level.LastPlan, rec.Level.LastPlanCode = p.remediation.Message, string(PlanRollingUpdate)
	}
}

// bundleRecord describes generation n for a record, keeping what the
// record had if n is unknown (a task that mounts no bundle keeps none).
func bundleRecord(gens []Generation, n int, old state.BundleRecord) state.BundleRecord {
	for _, g := range gens {
		if g.N != n || g.Manifest == nil {
			continue
		}
		m := g.Manifest
		return state.BundleRecord{Generation: fmt.Sprintf("generation-%d", n), WrittenAt: m.CreatedAt,
			ServerSerial: m.ServerSerial, ClientSerial: m.ClientSerial, NotAfter: m.NotAfter,
			IssuedReason: m.IssuedReason, IssuedAt: m.CreatedAt, RenewAt: m.RenewAt, ExpiryWarned: old.ExpiryWarned}
	}
	if n == 0 {
		return state.BundleRecord{}
	}
	return old
}

func reasons(res probe.Result) []string {
	out := make([]string, len(res.Findings))
	for i, f := range res.Findings {
		out[i] = string(f.Reason)
	}
	return out
}

func identityFindings(fs []reconcile.IdentityFinding) []state.Finding {
	var out []state.Finding
	for _, f := range fs {
		out = append(out, state.Finding{Reason: string(f.Reason), Message: f.Message})
	}
	return out
}

// actionReason is why the pass acted, for the records' history.
func (p *pass) actionReason() string {
	if p.st.LastAction == UpdateRollout {
		return p.rollout.Message
	}
	return p.remediation.Message
}

// dropRecords deletes the records of the service's tasks not in keep.
func (r *Reconciler) dropRecords(p *pass, keep []string) error {
	recs, err := r.Store.ListService(p.identity)
	if err != nil {
		return fmt.Errorf("listing the records of %s: %w", p.identity, err)
	}
	for _, rec := range recs {
		if !strings.HasPrefix(rec.ContainerName, p.svc.Name+".") || slices.Contains(keep, rec.ContainerID) {
			continue
		}
		if err := r.Store.Delete(rec.ContainerID); err != nil {
			return fmt.Errorf("deleting the record of task %s: %w", rec.ContainerName, err)
		}
	}
	r.mu.Lock()
	for task, svc := range r.tasks {
		if svc == p.svc.ID && !slices.Contains(keep, task) {
			delete(r.tasks, task)
		}
	}
	for _, id := range keep {
		if r.tasks == nil {
			r.tasks = map[string]string{}
		}
		r.tasks[id] = p.svc.ID
	}
	r.mu.Unlock()
	return nil
}

// forget drops everything the controller holds for a service that is gone
// or no longer managed: its records, what the last pass saw, and (once no
// service references them) its bundle generations.
func (r *Reconciler) forget(ctx context.Context, id string) error {
	r.mu.Lock()
	seen, known := r.seen[id]
	delete(r.seen, id)
	var tasks []string
	for task, svc := range r.tasks {
		if svc == id {
			tasks = append(tasks, task)
			delete(r.tasks, task)
		}
	}
	r.mu.Unlock()
	for _, t := range tasks {
		if err := r.Store.Delete(t); err != nil {
			return fmt.Errorf("deleting the record of task %s: %w", t, err)
		}
	}
	if r.Metrics != nil && known {
		r.Metrics.Forget(seen.identity)
	}
	if !known {
		return nil
	}
	return r.collectGone(ctx, seen.identity)
}
