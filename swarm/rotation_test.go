package swarm

import (
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

func TestTaskProcess(t *testing.T) {
	t.Parallel()
	old, latest := gen(1, madeAt(t0.Add(-2*time.Hour))), gen(2)
	gens := []Generation{old, latest}
	task := func(state, desired string, g Generation) dockerwatch.Task {
		return dockerwatch.Task{ID: "t", State: state, DesiredState: desired, StateSince: t0, Secrets: refsOf(g)}
	}
	running, created := dockerwatch.StateRunning, dockerwatch.StateCreated
	tests := map[string]struct {
		task      dockerwatch.Task
		wantOK    bool
		wantState dockerwatch.State
		wantStart time.Time // zero: older than the newest bundle
	}{
		"should report a running task on the newest generation as loaded since it started": {
			task: task("running", "running", latest), wantOK: true, wantState: running, wantStart: t0},
		"should report a running task on an older generation as never loaded": {
			task: task("running", "running", old), wantOK: true, wantState: running},
		"should report a task told to stop but still running, which still uses its old bundle": {
			task: task("running", "shutdown", old), wantOK: true, wantState: running},
		"should report a task whose health check is pending as running": {
			task: task("starting", "running", latest), wantOK: true, wantState: running, wantStart: t0},
		"should report a replaced task that is starting as running on its old bundle": {
			task: task("starting", "shutdown", old), wantOK: true, wantState: running},
		"should report a task not started yet on the newest generation as created": {
			task: task("preparing", "running", latest), wantOK: true, wantState: created},
		"should report a task not started yet on an older generation as stale": {
			task: task("pending", "running", old), wantOK: true, wantState: running},
		"should not report a task that exited": {
			task: task("shutdown", "shutdown", old)},
		"should not report a task that failed, even while the orchestrator still wants it": {
			task: task("failed", "running", latest)},
		"should not report a task that will not start": {
			task: task("assigned", "shutdown", old)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, ok := TaskProcess(tc.task, &latest, gens)
			if ok != tc.wantOK || c.State != tc.wantState || !c.StartedAt.Equal(tc.wantStart) {
				t.Errorf("got %+v ok=%t, want state %q started %s ok=%t", c, ok, tc.wantState, tc.wantStart, tc.wantOK)
			}
		})
	}
}

func TestTaskProcessWithoutAGeneration(t *testing.T) {
	t.Parallel()
	c, ok := TaskProcess(dockerwatch.Task{ID: "t", State: "running", DesiredState: "running", StateSince: t0}, nil, nil)
	if !ok || c.State != dockerwatch.StateRunning || !c.StartedAt.IsZero() {
		t.Errorf("got %+v ok=%t, want a running process that holds no bundle", c, ok)
	}
}
