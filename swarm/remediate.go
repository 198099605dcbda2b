package swarm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

// TaskObservation is one running task as the last probe saw it.
type TaskObservation struct {
	Task       dockerwatch.Task
	Generation int // the generation it mounts; 0 for none
	Probe      probe.Result
}

// RemediationInputs is what DecideRemediation needs.
type RemediationInputs struct {
	Service  dockerwatch.Service
	Identity string
	Policy   reconcile.Policy
	Desired  reconcile.Desired
	Tasks    []TaskObservation // running tasks only
	Latest   int
	Rolling  bool // a rollout is under way (ours or anyone's)
	State    ServiceState
	Now      time.Time
}

// Remediation is the decision for a whole service: swarm changes tasks
// only through the service, so the ladder's "restart" of any task is a
// forced update of the service (every task replaced, rolling), and
// "relabel" is an update of the service's labels.
type Remediation struct {
	Action  reconcile.Action // ActionNone, ActionRestart or ActionRelabel
	Code    reconcile.PlanCode
	Message string
	DryRun  bool
	RetryAt time.Time
	// Degraded is set when the ladder is spent and drift stays.
	Degraded string
	// ResetBudget ends the drift episode: every task is at its level.
	ResetBudget bool
	// Plans are the ladder's per-task plans, by task ID, for the records.
	Plans map[string]reconcile.Plan
	// Labels are the service labels a relabel sets.
	Labels map[string]string
}

// Plan codes of swarm mode, next to the ladder's.
const (
	// PlanRollingUpdate: a rollout is replacing the tasks; the ladder waits
	// for it instead of starting another update.
	PlanRollingUpdate reconcile.PlanCode = "rolling-update"
	// PlanCannotProbe: the controller cannot reach the task (no address on
	// its networks, no port, a bad label): a new task would not change
	// that, so nothing is done and the finding says what to fix.
	PlanCannotProbe reconcile.PlanCode = "cannot-probe"
)

// unprobeable are the findings of a probe that never reached the task.
var unprobeable = []probe.Reason{probe.NoAddresses, probe.NoPorts, probe.InvalidTarget}

// DecideRemediation walks the compose ladder (reconcile.Policy.Decide)
// for each running task, with the service's episode as every task's, and
// takes the strongest action any task needs. A declared reload signal or
// reload=watch means nothing here: a task's secrets never change, so a
// new bundle always arrives as new tasks. Pure; see remediate_test.go.
func DecideRemediation(in RemediationInputs) Remediation {
	d := in.Desired
	d.ReloadSignal, d.ReloadWatch = "", false
	out := Remediation{Plans: map[string]reconcile.Plan{}, ResetBudget: len(in.Tasks) > 0}
	for _, o := range in.Tasks {
		if r, ok := cannotProbe(o.Probe); ok {
			out.Plans[o.Task.ID] = reconcile.Plan{Code: PlanCannotProbe, Message: "cannot probe the task (" + string(r) + "); nothing a new task would change"}
			out.ResetBudget = false
			if out.Code == "" {
				out.Code, out.Message = PlanCannotProbe, taskName(in.Service, o.Task)+": "+out.Plans[o.Task.ID].Message
			}
			continue
		}
		plan := in.Policy.Decide(d, reconcile.Observation{
			Container: TaskContainer(in.Service, o.Task, in.Identity), Probe: o.Probe,
			Attempts: in.State.Attempts, NextActionAt: in.State.NextActionAt, Relabels: in.State.Relabels, Now: in.Now,
		})
		out.Plans[o.Task.ID] = plan
		out.ResetBudget = out.ResetBudget && plan.ResetBudget
		if plan.Degraded != "" && out.Degraded == "" {
			out.Degraded = plan.Degraded
		}
		if stronger(plan.Action, out.Action) || (out.Code == "" && plan.Code != "") {
			out.Action, out.Code, out.Message, out.DryRun = plan.Action, plan.Code, taskName(in.Service, o.Task)+": "+plan.Message, plan.DryRun
		}
		if !plan.RetryAt.IsZero() && (out.RetryAt.IsZero() || plan.RetryAt.Before(out.RetryAt)) {
			out.RetryAt = plan.RetryAt
		}
	}
	if in.Rolling && out.Action != reconcile.ActionNone {
		out.Action, out.Code, out.DryRun, out.ResetBudget = reconcile.ActionNone, PlanRollingUpdate, false, false
		out.Message = "a rolling update is replacing the tasks; the ladder waits for it"
		out.RetryAt = in.Now.Add(inProgressPoll)
	}
	if out.Action == reconcile.ActionSignal {
		out.Action = reconcile.ActionRestart
	}
	if out.Action == reconcile.ActionRelabel {
		out.Labels = relabelLabels(in)
	}
	return out
}

// stronger orders actions: relabel > restart (or signal) > none.
func stronger(a, b reconcile.Action) bool {
	rank := func(x reconcile.Action) int {
		switch x {
		case reconcile.ActionRelabel:
			return 2
		case reconcile.ActionRestart, reconcile.ActionSignal:
			return 1
		}
		return 0
	}
	return rank(a) > rank(b)
}

// relabelLabels are the labels a relabel sets: what was observed (the
// worst task), the findings that drove it, and the quarantine labels.
func relabelLabels(in RemediationInputs) map[string]string {
	worst := probe.MTLS
	var findings []string
	for _, o := range in.Tasks {
		if o.Probe.Level.Rank() < worst.Rank() {
			worst = o.Probe.Level
		}
		for _, f := range o.Probe.Findings {
			if !slices.Contains(findings, string(f.Reason)) {
				findings = append(findings, string(f.Reason))
			}
		}
	}
	labels := maps.Clone(in.Policy.Quarantine)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[reconcile.LabelObserved] = string(worst)
	labels[reconcile.LabelDrift] = strings.Join(findings, ",")
	if labels[reconcile.LabelDrift] == "" {
		labels[reconcile.LabelDrift] = "below-desired"
	}
	return labels
}

// TaskContainer is a task in the shape the ladder and the prober read: its
// service's labels, environment and ports, its own state, start and
// addresses. A task that is not running is "created": the ladder leaves
// it to the engine, as it leaves a stopped container alone.
func TaskContainer(svc dockerwatch.Service, t dockerwatch.Task, identity string) dockerwatch.Container {
	c := AsContainer(svc)
	c.ID, c.Name, c.Service = t.ID, taskName(svc, t), identity
	c.Networks = t.Networks
	c.State = dockerwatch.StateCreated
	if t.Running() {
		c.State, c.StartedAt = dockerwatch.StateRunning, t.StateSince
	}
	return c
}

// taskName is the task's name as `docker service ps` shows it:
// <service>.<slot> for a replica, <service>.<node> for a global task.
func taskName(svc dockerwatch.Service, t dockerwatch.Task) string {
	if t.Slot > 0 {
		return fmt.Sprintf("%s.%d", svc.Name, t.Slot)
	}
	return svc.Name + "." + t.NodeID
}

// cannotProbe reports whether a probe never reached its task, and why.
func cannotProbe(res probe.Result) (probe.Reason, bool) {
	for _, f := range res.Findings {
		if slices.Contains(unprobeable, f.Reason) {
			return f.Reason, true
		}
	}
	return "", false
}
