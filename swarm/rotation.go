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

// Inspect returns a task as the rollover reads a container: running or
// not, and since when its process holds the newest generation. A task
// that mounts an older one has not loaded the current bundle, whenever it
// started: its start is reported as zero, which the phases read as
// "process older than its bundle", the truth.
func (r *Reconciler) Inspect(_ context.Context, taskID string) (dockerwatch.Container, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.seen {
		for _, t := range s.tasks {
			if t.ID != taskID || t.DesiredState != dockerwatch.TaskRunning {
				continue
			}
			c := dockerwatch.Container{ID: t.ID, State: dockerwatch.StateCreated}
			if t.Running() {
				c.State = dockerwatch.StateRunning
			}
			if s.latest != nil && MountedGeneration(t.Secrets, s.gens) == s.latest.N && s.latest.Manifest != nil {
				c.StartedAt = t.StateSince
				if w := s.latest.Manifest.CreatedAt; w.After(c.StartedAt) {
					c.StartedAt = w // it mounts it, so it loaded it; clocks of two nodes may disagree
				}
			}
			return c, nil
		}
	}
	return dockerwatch.Container{}, fmt.Errorf("task %s: %w", taskID, dockerwatch.ErrNotFound)
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
