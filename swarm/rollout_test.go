package swarm

import (
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

func TestDecideRollout(t *testing.T) {
	t.Parallel()
	g2 := gen(2)
	policy := reconcile.Policy{Mode: reconcile.Enforce, BackoffBase: 10 * time.Second, BackoffMax: time.Minute}
	tests := map[string]struct {
		svc     dockerwatch.Service
		mounted int // the generation svc mounts
		st      ServiceState
		mode    reconcile.Mode
		want    RolloutCode
		retry   time.Duration // wanted RetryAt - t0; 0 for none
	}{
		"should do nothing when the spec mounts the newest generation": {
			svc: service(mounting(refsOf(g2)...)), want: RolloutCurrent},
		"should start a rollout of a new generation": {
			svc: service(mounting(refsOf(gen(1))...)), want: RolloutStart},
		"should start the first rollout of a service without a bundle": {
			svc: service(), want: RolloutStart},
		"should wait while the engine rolls an update back": {
			svc: service(updateState("rollback_started")), want: RolloutInProgress, retry: inProgressPoll},
		"should join an update in flight that dropped the bundle (a stack deploy)": {
			svc: service(updateState("updating")), want: RolloutJoin},
		"should supersede an update in flight to an older generation": {
			svc: service(updateState("updating"), mounting(refsOf(gen(1))...)), mounted: 1, want: RolloutSupersede},
		"should only log a supersede in observe mode": {
			svc: service(updateState("updating"), mounting(refsOf(gen(1))...)), mounted: 1, mode: reconcile.Observe, want: RolloutObserve},
		"should leave an update in flight that mounts the bundle": {
			svc: service(updateState("updating"), mounting(refsOf(g2)...)), want: RolloutCurrent},
		"should back off after a rollout of the same generation did not hold": {
			svc: service(updateState("rollback_completed")), st: ServiceState{RolledOut: 2, Rollouts: 1, RolloutAt: t0.Add(-time.Second)},
			want: RolloutBackoff, retry: 9 * time.Second},
		"should try again once the backoff passed": {
			svc: service(updateState("rollback_completed")), st: ServiceState{RolledOut: 2, Rollouts: 1, RolloutAt: t0.Add(-time.Minute)},
			want: RolloutStart},
		"should give up after MaxRollouts that did not hold": {
			svc: service(updateState("rollback_completed")), st: ServiceState{RolledOut: 2, Rollouts: MaxRollouts}, want: RolloutGivenUp},
		"should count rollouts per generation": {
			svc: service(), st: ServiceState{RolledOut: 1, Rollouts: MaxRollouts}, want: RolloutStart},
		"should only log in observe mode": {
			svc: service(), mode: reconcile.Observe, want: RolloutObserve},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := policy
			if tc.mode != "" {
				p.Mode = tc.mode
			}
			got := DecideRollout(RolloutInputs{Service: tc.svc, Desired: refsOf(g2), Latest: 2, Mounted: tc.mounted, State: tc.st, Policy: p, Now: t0})
			if got.Code != tc.want {
				t.Fatalf("got %s (%s), want %s", got.Code, got.Message, tc.want)
			}
			if tc.retry != 0 && !got.RetryAt.Equal(t0.Add(tc.retry)) {
				t.Errorf("got retry at %s, want t0+%s", got.RetryAt, tc.retry)
			}
			if (got.Code == RolloutStart || got.Code == RolloutJoin || got.Code == RolloutSupersede) && !SameSecrets(got.Change.Secrets, refsOf(g2)) {
				t.Errorf("got change %+v, want the references of generation 2", got.Change.Secrets)
			}
		})
	}
}

func TestUpdateConfigFor(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		svc                    dockerwatch.Service
		wantOrder, wantFailure string // "" leaves the spec's
	}{
		"should ask for start-first and rollback by default": {
			svc: dockerwatch.Service{}, wantOrder: "start-first", wantFailure: "rollback"},
		"should leave a service that has both": {
			svc: dockerwatch.Service{UpdateOrder: "start-first", FailureAction: "rollback"}},
		"should keep stop-first for a host-mode port (two tasks on one node would clash)": {
			svc: dockerwatch.Service{HostPorts: true, FailureAction: "rollback"}},
		"should turn start-first into stop-first for a host-mode port": {
			svc: dockerwatch.Service{HostPorts: true, UpdateOrder: "start-first", FailureAction: "continue"}, wantOrder: "stop-first"},
		"should respect failure_action continue": {
			svc: dockerwatch.Service{UpdateOrder: "start-first", FailureAction: "continue"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			order, failure := updateConfigFor(tc.svc)
			if order != tc.wantOrder || failure != tc.wantFailure {
				t.Errorf("got order %q failure %q, want %q %q", order, failure, tc.wantOrder, tc.wantFailure)
			}
		})
	}
}

func TestServiceStateStarted(t *testing.T) {
	t.Parallel()
	st := ServiceState{}.Started(3, t0).Started(3, t0.Add(time.Second))
	if st.RolledOut != 3 || st.Rollouts != 2 || !st.RolloutAt.Equal(t0.Add(time.Second)) {
		t.Errorf("got %+v, want generation 3 rolled out twice, last at t0+1s", st)
	}
	if st = st.Started(4, t0); st.Rollouts != 1 {
		t.Errorf("got %d rollouts of a new generation, want 1", st.Rollouts)
	}
}
