package reconcile

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

func TestGuardOperator(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	restart := Plan{Action: ActionRestart, Code: PlanRemediate, Message: "observed down < desired mtls"}
	stop := dockerwatch.Intervention{At: now.Add(-time.Second), Action: "kill", Signal: "15"}
	tests := map[string]struct {
		plan     Plan
		observed probe.Level
		facts    OperatorFacts
		// wantCode is the plan's code after the guard; wantAction the action
		// left; wantRetry when the plan must be looked at again (zero: not
		// set by the guard).
		wantCode   PlanCode
		wantAction Action
		wantRetry  time.Time
	}{
		"should pass a plan with no action": {
			plan: Plan{}, observed: probe.Down, facts: OperatorFacts{Stopping: true, Stop: stop},
			wantCode: "", wantAction: ActionNone,
		},
		"should stand aside when someone else is stopping the container": {
			plan: restart, observed: probe.Down, facts: OperatorFacts{Stopping: true, Stop: stop, DownSeenAt: now.Add(-time.Minute)},
			wantCode: PlanStoodAside, wantAction: ActionNone,
		},
		"should stand aside from a reload restart too, whatever the level": {
			plan: Plan{Action: ActionRestart, Code: PlanRemediate, Reload: true}, observed: probe.MTLS, facts: OperatorFacts{Stopping: true, Stop: stop},
			wantCode: PlanStoodAside, wantAction: ActionNone,
		},
		"should wait for a second probe on a first down": {
			plan: restart, observed: probe.Down,
			wantCode: PlanConfirmingDown, wantAction: ActionNone, wantRetry: now.Add(downConfirmAfter),
		},
		"should wait until the confirmation delay has passed since the first down": {
			plan: restart, observed: probe.Down, facts: OperatorFacts{DownSeenAt: now.Add(-time.Second)},
			wantCode: PlanConfirmingDown, wantAction: ActionNone, wantRetry: now.Add(time.Second),
		},
		"should wait until the container's events have been quiet": {
			plan: restart, observed: probe.Down, facts: OperatorFacts{DownSeenAt: now.Add(-time.Minute), LastEventAt: now.Add(-200 * time.Millisecond)},
			wantCode: PlanConfirmingDown, wantAction: ActionNone, wantRetry: now.Add(800 * time.Millisecond),
		},
		"should act on a confirmed down": {
			plan: restart, observed: probe.Down, facts: OperatorFacts{DownSeenAt: now.Add(-downConfirmAfter), LastEventAt: now.Add(-time.Minute)},
			wantCode: PlanRemediate, wantAction: ActionRestart,
		},
		"should not delay an action on a level other than down": {
			plan: restart, observed: probe.Plain,
			wantCode: PlanRemediate, wantAction: ActionRestart,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := GuardOperator(tc.plan, tc.observed, tc.facts, now)
			if got.Code != tc.wantCode || got.Action != tc.wantAction {
				t.Fatalf("got code %q action %q, want %q %q", got.Code, got.Action, tc.wantCode, tc.wantAction)
			}
			if !got.RetryAt.Equal(tc.wantRetry) {
				t.Errorf("RetryAt: got %v, want %v", got.RetryAt, tc.wantRetry)
			}
		})
	}
}

// fakeInterventions reports one stop for one container.
type fakeInterventions struct {
	mu   sync.Mutex
	id   string
	stop dockerwatch.Intervention
}

func (f *fakeInterventions) StoppedByOther(id string, since time.Time) (dockerwatch.Intervention, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != f.id || !f.stop.At.After(since) {
		return dockerwatch.Intervention{}, false
	}
	return f.stop, true
}

func (f *fakeInterventions) LastEventAt(id string) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if id != f.id {
		return time.Time{}
	}
	return f.stop.At
}

func TestLadderStandsAsideWhileSomeoneElseStopsTheContainer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addRunning()
	actions := &fakeActions{}
	withProbing(f, Production, probe.Down, actions)
	var logs strings.Builder
	f.r.Log = slog.New(slog.NewTextHandler(&logs, nil))
	f.r.Interventions = &fakeInterventions{id: c.ID, stop: dockerwatch.Intervention{At: f.now.Add(-time.Second), Action: "kill", Signal: "15"}}
	f.runFor(t, c.ID, 10*time.Minute)
	if actions.restarts != 0 {
		t.Errorf("restarts while the operator stops the container: got %d, want 0", actions.restarts)
	}
	if n := strings.Count(logs.String(), "stood aside"); n != 1 {
		t.Errorf("'stood aside' log lines: got %d, want 1 (once per stop)\n%s", n, logs.String())
	}
}

func TestLadderStandsAsideFromAnActionAlreadyDecided(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addRunning()
	actions := &fakeActions{}
	withProbing(f, Production, probe.Plain, actions)
	iv := &fakeInterventions{id: c.ID}
	f.r.Interventions = iv
	// The operator's docker stop lands after the ladder decided, while the
	// action waits for its slot.
	f.r.Limiter = limiterFunc(func(now time.Time) time.Duration {
		iv.mu.Lock()
		iv.stop = dockerwatch.Intervention{At: now, Action: "kill", Signal: "15"}
		iv.mu.Unlock()
		return 0
	})
	mustReconcile(t, f, c.ID)
	if actions.restarts != 0 {
		t.Errorf("restarts after a stop that landed before the action: got %d, want 0", actions.restarts)
	}
}

type limiterFunc func(now time.Time) time.Duration

func (l limiterFunc) Reserve(now time.Time) time.Duration { return l(now) }

func TestLadderActsOnDownOnlyOnceConfirmed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addRunning()
	actions := &fakeActions{}
	withProbing(f, Production, probe.Down, actions)
	res, err := f.reconcile(t, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if actions.restarts != 0 || res.RequeueAfter != downConfirmAfter {
		t.Fatalf("first down: got %d restarts and requeue %s, want 0 and %s", actions.restarts, res.RequeueAfter, downConfirmAfter)
	}
	f.now = f.now.Add(res.RequeueAfter)
	mustReconcile(t, f, c.ID)
	if actions.restarts != 1 {
		t.Errorf("confirmed down: got %d restarts, want 1", actions.restarts)
	}
}
