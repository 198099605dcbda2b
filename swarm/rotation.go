package swarm

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// The CA rollover in swarm mode is the compose mode's rotation.Rotator,
// unchanged: it reads the per-task records (the reconciler writes them),
// and these two adapters stand in for the volume and for Docker. What a
// phase waits for is the same evidence: a task that mounts the new
// generation (it started after it was created) and a probe of it with the
// new CA's client certificate (overlap), or serving the new CA's leaf
// (reissue). The reconciler does the rest as in compose mode: a changed
// trust bundle or issuer makes a new generation, and its rollout replaces
// the tasks.

// ReadBundle returns the public half of identity's newest complete
// generation (no key: the rollover only reads certificates), written when
// its manifest was created. An identity without one is fs.ErrNotExist.
func (r *Reconciler) ReadBundle(identity string) (*certs.BundleFiles, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.seen {
		if s.identity != identity || s.latest == nil || s.latest.Manifest == nil {
			continue
		}
		m := s.latest.Manifest
		return &certs.BundleFiles{ServerCert: m.PEM.ServerCert, ClientCert: m.PEM.ClientCert, CA: m.PEM.CA,
			Generation: fmt.Sprintf("generation-%d", s.latest.N), WrittenAt: m.CreatedAt}, nil
	}
	return nil, fmt.Errorf("bundle of %s: %w", identity, fs.ErrNotExist)
}

// Inspect returns a task as the rollover reads a container (see
// TaskProcess), from what the last pass of its service saw.
func (r *Reconciler) Inspect(_ context.Context, taskID string) (dockerwatch.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.seen {
		for _, t := range s.tasks {
			if t.ID != taskID {
				continue
			}
			if c, ok := TaskProcess(t, s.latest, s.gens); ok {
				return c, nil
			}
		}
	}
	return dockerwatch.Container{}, fmt.Errorf("task %s: %w", taskID, dockerwatch.ErrNotFound)
}

// TaskProcess is task t as the rollover reads a container: whether its
// process runs, and since when it holds latest, the newest generation;
// ok is false for a task whose process has ended and will not start
// (nothing to wait for). Pure; see rotation_test.go.
//
//   - A process that is up runs, whatever the orchestrator wants of it: a
//     replaced task in its stop grace period, or a new one whose health
//     check is pending, calls and serves peers with the bundle it mounts.
//   - One that mounts an older generation has not loaded the current
//     bundle, whenever it started: its start is zero, which the phases
//     read as "process older than its bundle", the truth.
//   - A task not started yet that mounts latest is created: it loads the
//     current bundle when it starts. One that mounts an older generation
//     will start with that: it is waited for as a stale process.
func TaskProcess(t dockerwatch.Task, latest *Generation, gens []Generation) (dockerwatch.Container, bool) {
	current := latest != nil && latest.Manifest != nil && MountedGeneration(t.Secrets, gens) == latest.N
	c := dockerwatch.Container{ID: t.ID, State: dockerwatch.StateRunning}
	switch {
	case t.ProcessUp() && current:
		c.StartedAt = t.StateSince
		if w := latest.Manifest.CreatedAt; w.After(c.StartedAt) {
			c.StartedAt = w // it mounts it, so it loaded it; clocks of two nodes may disagree
		}
	case t.ProcessUp():
	case t.DesiredState != dockerwatch.TaskRunning || taskEnded(t.State):
		return dockerwatch.Container{}, false
	case current:
		c.State = dockerwatch.StateCreated
	}
	return c, true
}

// taskEnded reports whether a task in state s has run its course: its
// container will never run (again).
func taskEnded(s string) bool {
	switch s {
	case "complete", dockerwatch.TaskShutdown, "failed", "rejected", "remove", "orphaned":
		return true
	}
	return false
}

// EnqueueTask returns a func that queues the service of a task, for the
// rotator, which enqueues the records' keys (task IDs) after a CA step.
func (r *Reconciler) EnqueueTask(add func(serviceID string)) func(taskID string) {
	return func(taskID string) {
		r.mu.Lock()
		svc, ok := r.tasks[taskID]
		r.mu.Unlock()
		if ok {
			add(svc)
		}
	}
}
