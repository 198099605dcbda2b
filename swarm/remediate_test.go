package swarm

import (
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

// task returns a running task of slot, started at started, mounting gen.
func task(slot int, started time.Time) dockerwatch.Task {
	return dockerwatch.Task{ID: "t" + string(rune('0'+slot)), ServiceID: "svc-web", Slot: slot, NodeID: "node1",
		State: dockerwatch.TaskRunning, DesiredState: dockerwatch.TaskRunning, StateSince: started}
}

func observed(t dockerwatch.Task, level probe.Level, reasons ...probe.Reason) TaskObservation {
	res := probe.Result{Level: level, At: t0}
	for _, r := range reasons {
		res.Findings = append(res.Findings, probe.Finding{Reason: r})
	}
	return TaskObservation{Task: t, Generation: 2, Probe: res}
}

func TestDecideRemediation(t *testing.T) {
	t.Parallel()
	policy := reconcile.Policy{Environment: reconcile.Development, Mode: reconcile.Enforce, RestartBudget: 2,
		BackoffBase: 10 * time.Second, BackoffMax: time.Minute, StartGrace: 5 * time.Second,
		Quarantine: map[string]string{"traefik.enable": "false"}}
	old := t0.Add(-time.Minute)
	tests := map[string]struct {
		tasks     []TaskObservation
		desired   reconcile.Desired // default mtls, restart, budget 2
		st        ServiceState
		rolling   bool
		mode      reconcile.Mode
		want      reconcile.Action
		wantCode  reconcile.PlanCode
		wantReset bool // the drift episode ends
	}{
		"should leave a service whose tasks serve mtls, and end its episode": {
			tasks: []TaskObservation{observed(task(1, old), probe.MTLS), observed(task(2, old), probe.MTLS)},
			st:    ServiceState{Attempts: 1}, wantCode: reconcile.PlanAtDesired, wantReset: true},
		"should force an update when one task drifts": {
			tasks: []TaskObservation{observed(task(1, old), probe.MTLS), observed(task(2, old), probe.Plain, probe.NotTLS)},
			want:  reconcile.ActionRestart, wantCode: reconcile.PlanRemediate},
		"should not act inside a task's start grace": {
			tasks:    []TaskObservation{observed(task(1, t0.Add(-time.Second)), probe.Plain)},
			wantCode: reconcile.PlanStartGrace},
		"should wait for a rolling update instead of starting another": {
			tasks: []TaskObservation{observed(task(1, old), probe.Plain)}, rolling: true, wantCode: PlanRollingUpdate},
		"should wait out the backoff": {
			tasks: []TaskObservation{observed(task(1, old), probe.Plain)}, st: ServiceState{Attempts: 1, NextActionAt: t0.Add(time.Second)},
			wantCode: reconcile.PlanBackoff},
		"should relabel once the budget is spent when asked to": {
			tasks:   []TaskObservation{observed(task(1, old), probe.Plain, probe.NotTLS)},
			desired: reconcile.Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: reconcile.OnDriftRelabel, Budget: 2},
			st:      ServiceState{Attempts: 2}, want: reconcile.ActionRelabel, wantCode: reconcile.PlanRelabel},
		"should report a spent budget without acting": {
			tasks: []TaskObservation{observed(task(1, old), probe.Plain)}, st: ServiceState{Attempts: 2},
			wantCode: reconcile.PlanBudgetSpent},
		"should restart, not signal, a service that declares a reload signal (its secrets never change in place)": {
			tasks:   []TaskObservation{observed(task(1, old), probe.Plain)},
			desired: reconcile.Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: reconcile.OnDriftRestart, Budget: 2, ReloadSignal: "SIGHUP"},
			want:    reconcile.ActionRestart, wantCode: reconcile.PlanRemediate},
		"should leave a task the controller cannot reach (no shared network): a new one would not help": {
			tasks:    []TaskObservation{observed(task(1, old), probe.Down, probe.NoAddresses)},
			wantCode: PlanCannotProbe},
		"should only decide in observe mode": {
			tasks: []TaskObservation{observed(task(1, old), probe.Plain)}, mode: reconcile.Observe,
			want: reconcile.ActionRestart, wantCode: reconcile.PlanRemediate},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := policy
			if tc.mode != "" {
				p.Mode = tc.mode
			}
			d := tc.desired
			if d.Level == "" {
				d = reconcile.Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: reconcile.OnDriftRestart, Budget: 2}
			}
			got := DecideRemediation(RemediationInputs{Service: service(), Identity: "web", Policy: p, Desired: d,
				Tasks: tc.tasks, Latest: 2, Rolling: tc.rolling, State: tc.st, Now: t0})
			if got.Action != tc.want || got.Code != tc.wantCode || got.ResetBudget != tc.wantReset {
				t.Errorf("got action %q code %q reset %v (%s), want %q %q %v", got.Action, got.Code, got.ResetBudget, got.Message,
					tc.want, tc.wantCode, tc.wantReset)
			}
			if got.DryRun != (tc.mode == reconcile.Observe) {
				t.Errorf("got dry run %v in mode %q", got.DryRun, tc.mode)
			}
			if got.Action == reconcile.ActionRelabel {
				want := map[string]string{"traefik.enable": "false", reconcile.LabelObserved: "plain", reconcile.LabelDrift: "not-tls"}
				for k, v := range want {
					if got.Labels[k] != v {
						t.Errorf("got relabel label %s=%q, want %q", k, got.Labels[k], v)
					}
				}
			}
		})
	}
}

func TestTaskContainerIsTheTaskAsTheLadderReadsIt(t *testing.T) {
	t.Parallel()
	tk := task(2, t0)
	tk.Networks = map[string]dockerwatch.Network{"app": {IPAddress: "10.251.0.9"}}
	c := TaskContainer(service(withLabel("crank.security.level", "tls")), tk, "web")
	if c.ID != "t2" || c.Name != "demo_web.2" || c.Service != "web" || c.State != dockerwatch.StateRunning || !c.StartedAt.Equal(t0) {
		t.Errorf("got %+v, want running task t2 demo_web.2 of web since t0", c)
	}
	if c.Labels["crank.security.level"] != "tls" || c.IPs()[0] != "10.251.0.9" {
		t.Errorf("got labels %v and addresses %v, want the service's labels and the task's own address", c.Labels, c.IPs())
	}
	tk.State = "starting"
	if c := TaskContainer(service(), tk, "web"); c.State != dockerwatch.StateCreated || !c.StartedAt.IsZero() {
		t.Errorf("got state %s since %s for a starting task, want created, never started", c.State, c.StartedAt)
	}
}
