package swarm

import (
	"fmt"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

// ServiceState is what the controller remembers about one service between
// passes (in the state store's meta): the remediation episode, as a
// container's record holds it in compose mode, and its last rollout.
type ServiceState struct {
	Attempts     int       `json:"attempts,omitempty"`
	NextActionAt time.Time `json:"next_action_at,omitzero"`
	Relabels     int       `json:"relabels,omitempty"`
	Degraded     string    `json:"degraded,omitempty"`
	LastAction   string    `json:"last_action,omitempty"`
	LastActionAt time.Time `json:"last_action_at,omitzero"`
	// RolledOut is the generation of the last rollout the controller
	// started, RolloutAt when, and Rollouts how many times it started one
	// for that generation: more than one means the engine rolled it back
	// (or someone reverted it) and the controller tried again.
	RolledOut int       `json:"rolled_out,omitempty"`
	RolloutAt time.Time `json:"rollout_at,omitzero"`
	Rollouts  int       `json:"rollouts,omitempty"`
}

// RolloutCode says what DecideRollout chose.
type RolloutCode string

// Rollout codes.
const (
	RolloutCurrent    RolloutCode = "current"     // the spec mounts the newest generation
	RolloutStart      RolloutCode = "start"       // swap the references: a rolling update
	RolloutInProgress RolloutCode = "in-progress" // the engine is rolling back an update; wait
	// RolloutJoin: someone else's update (a `docker stack deploy`) is in
	// flight with a spec that lacks the bundle; add it to that update now,
	// before its new tasks fail their health checks without certificates
	// and the engine rolls the operator's change back.
	RolloutJoin RolloutCode = "join"
	// RolloutSupersede: an update is in flight whose spec mounts an older
	// generation (most often the controller's own previous rollout, when a
	// CA rollover phase or a renewal comes before it completed); the newest
	// replaces it at once, as a join does.
	RolloutSupersede RolloutCode = "supersede"
	RolloutBackoff   RolloutCode = "backoff"  // the last rollout of this generation did not hold; wait
	RolloutGivenUp   RolloutCode = "given-up" // it did not hold MaxRollouts times; degraded
	RolloutObserve   RolloutCode = "observe"  // observe mode: logged, not done
)

// MaxRollouts is how many times one generation is rolled out before the
// controller stops and reports the service degraded: a generation whose
// tasks fail (a key the process cannot read) is rolled back by the engine
// each time (failure_action rollback).
const MaxRollouts = 3

// RolloutInputs is what DecideRollout needs.
type RolloutInputs struct {
	Service dockerwatch.Service
	Desired []dockerwatch.SecretRef // DesiredSecrets of the newest generation
	Latest  int                     // its number
	Mounted int                     // the generation the spec mounts; 0 for none
	State   ServiceState
	Policy  reconcile.Policy // Mode and Backoff
	Now     time.Time
}

// RolloutPlan is DecideRollout's answer.
type RolloutPlan struct {
	Code    RolloutCode
	Message string
	Change  dockerwatch.ServiceChange // for RolloutStart (and what observe would do)
	RetryAt time.Time
}

// inProgressPoll is how often a service whose update the engine is
// running is looked at: the rollout's tasks are probed as they come up.
const inProgressPoll = 2 * time.Second

// DecideRollout says whether the service's secret references must be
// swapped for the newest generation now. Pure; see rollout_test.go.
func DecideRollout(in RolloutInputs) RolloutPlan {
	svc, st := in.Service, in.State
	switch {
	case SameSecrets(svc.Secrets, in.Desired):
		return RolloutPlan{Code: RolloutCurrent, Message: fmt.Sprintf("the service mounts generation %d", in.Latest)}
	case svc.UpdateState == "rollback_started":
		return RolloutPlan{Code: RolloutInProgress, Message: "the engine is rolling an update back", RetryAt: in.Now.Add(inProgressPoll)}
	case svc.UpdateState == "updating":
		plan := RolloutPlan{Code: RolloutJoin, Change: rolloutChange(svc, in.Desired),
			Message: fmt.Sprintf("an update without the bundle is in flight (a stack deploy?): adding generation %d to it", in.Latest)}
		if in.Mounted != 0 {
			plan.Code, plan.Message = RolloutSupersede, fmt.Sprintf(
				"an update to generation %d is in flight: generation %d replaces it", in.Mounted, in.Latest)
		}
		if in.Policy.Mode == reconcile.Observe {
			plan.Code, plan.Message = RolloutObserve, "would "+string(plan.Code)+": "+plan.Message
		}
		return plan
	}
	tries := 0
	if st.RolledOut == in.Latest {
		tries = st.Rollouts
	}
	if tries >= MaxRollouts {
		return RolloutPlan{Code: RolloutGivenUp, Message: fmt.Sprintf(
			"generation %d was rolled out %d times and did not hold (update state %q: %s); fix the service, then update it",
			in.Latest, tries, svc.UpdateState, svc.UpdateMessage)}
	}
	if tries > 0 {
		if at := st.RolloutAt.Add(in.Policy.Backoff(tries)); in.Now.Before(at) {
			return RolloutPlan{Code: RolloutBackoff, RetryAt: at, Message: fmt.Sprintf(
				"the rollout of generation %d did not hold (update state %q); trying again at %s", in.Latest, svc.UpdateState, formatTime(at))}
		}
	}
	plan := RolloutPlan{Code: RolloutStart, Change: rolloutChange(svc, in.Desired),
		Message: fmt.Sprintf("rolling update to generation %d (attempt %d)", in.Latest, tries+1)}
	if in.Policy.Mode == reconcile.Observe {
		plan.Code, plan.Message = RolloutObserve, "would start a "+plan.Message
	}
	return plan
}

// rolloutChange swaps the references, with the update order start-first
// where the service allows it (a port published in host mode forbids two
// tasks of it on one node) and failure_action rollback (unless the
// operator chose continue), so a generation that breaks the tasks is
// rolled back by the engine itself.
func rolloutChange(svc dockerwatch.Service, refs []dockerwatch.SecretRef) dockerwatch.ServiceChange {
	ch := dockerwatch.ServiceChange{SetSecrets: true, Secrets: refs}
	ch.UpdateOrder, ch.FailureAction = updateConfigFor(svc)
	return ch
}

// updateConfigFor returns the update order and failure action the
// controller's updates need of svc, "" where it already has them.
func updateConfigFor(svc dockerwatch.Service) (order, failure string) {
	want := dockerwatch.UpdateStartFirst
	if svc.HostPorts {
		want = dockerwatch.UpdateStopFirst
	}
	if svc.UpdateOrder != want && (want == dockerwatch.UpdateStartFirst || svc.UpdateOrder != "") {
		order = want
	}
	if svc.FailureAction != "rollback" && svc.FailureAction != "continue" {
		failure = "rollback"
	}
	return order, failure
}

// Started records that a rollout of gen started at now.
func (st ServiceState) Started(gen int, now time.Time) ServiceState {
	if st.RolledOut != gen {
		st.RolledOut, st.Rollouts = gen, 0
	}
	st.Rollouts++
	st.RolloutAt = now
	return st
}
