package swarm

import (
	"context"
	"fmt"
	"sync"

	"github.com/crank-platform/crank-mtls-controller/probe"
)

// probeTasks probes every running task of the pass's service at its own
// addresses on the controller's overlay networks, concurrently (the
// prober bounds how many run at once). Each task is checked against the
// server certificate of the generation it mounts: serving anything else
// is served-cert-not-current.
func (r *Reconciler) probeTasks(ctx context.Context, p *pass) []TaskObservation {
	var obs []TaskObservation
	for _, t := range p.tasks {
		if t.Running() {
			obs = append(obs, TaskObservation{Task: t, Generation: MountedGeneration(t.Secrets, p.gens)})
		}
	}
	if r.Prober == nil {
		return obs
	}
	var wg sync.WaitGroup
	for i := range obs {
		target, err := r.target(p, obs[i])
		if err != nil {
			obs[i].Probe = probe.Result{At: p.now, Level: probe.Down, Findings: []probe.Finding{{Reason: probe.InvalidTarget, Message: err.Error()}}}
			continue
		}
		wg.Go(func() { obs[i].Probe = r.Prober.Probe(ctx, target) })
	}
	wg.Wait()
	return obs
}

// target is where and what to probe for one task: the ports and health
// path the compose rules find in its service's labels and environment
// (probe.TargetFor), its addresses on the controller's networks, the
// identity as the name it must serve, and the fingerprint of the
// generation it mounts.
func (r *Reconciler) target(p *pass, o TaskObservation) (probe.Target, error) {
	t, err := probe.TargetFor(TaskContainer(p.svc, o.Task, p.identity), r.Networks)
	if err != nil {
		return probe.Target{}, fmt.Errorf("task %s: %w", taskName(p.svc, o.Task), err)
	}
	t.Service = p.identity
	for _, g := range p.gens {
		if g.N == o.Generation && g.Manifest != nil {
			t.ExpectedFingerprint = g.Manifest.ServerFingerprint
		}
	}
	return t, nil
}
