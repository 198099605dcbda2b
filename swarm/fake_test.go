package swarm

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// fakeEngine is an in-memory swarm manager. The embedded nil Engine makes
// any call it does not implement panic.
type fakeEngine struct {
	Engine

	mu       sync.Mutex
	seq      int
	services map[string]dockerwatch.Service
	tasks    map[string][]dockerwatch.Task
	secrets  map[string]dockerwatch.Secret
	data     map[string][]byte // secret values, by ID: what the manager keeps
	configs  map[string]dockerwatch.SwarmConfig
	updates  []dockerwatch.ServiceChange
	inUse    map[string]bool // secret IDs the engine refuses to remove
}

func newFakeEngine(svcs ...dockerwatch.Service) *fakeEngine {
	f := &fakeEngine{services: map[string]dockerwatch.Service{}, tasks: map[string][]dockerwatch.Task{},
		secrets: map[string]dockerwatch.Secret{}, data: map[string][]byte{}, configs: map[string]dockerwatch.SwarmConfig{}, inUse: map[string]bool{}}
	for _, s := range svcs {
		f.services[s.ID] = s
	}
	return f
}

func (f *fakeEngine) Service(_ context.Context, id string) (dockerwatch.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[id]
	if !ok {
		return s, fmt.Errorf("service %s: %w", id, dockerwatch.ErrNotFound)
	}
	return s, nil
}

func (f *fakeEngine) Services(context.Context) ([]dockerwatch.Service, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Collect(maps.Values(f.services)), nil
}

func (f *fakeEngine) Tasks(_ context.Context, id string) ([]dockerwatch.Task, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tasks[id]), nil
}

func (f *fakeEngine) ImagePorts(context.Context, string) ([]dockerwatch.Port, error) {
	return []dockerwatch.Port{{Port: 8443, Proto: "tcp"}, {Port: 8080, Proto: "tcp"}}, nil
}

func matches(labels map[string]string, label string) bool {
	k, v, hasValue := strings.Cut(label, "=")
	got, ok := labels[k]
	return ok && (!hasValue || got == v)
}

func (f *fakeEngine) Secrets(_ context.Context, label string) ([]dockerwatch.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dockerwatch.Secret
	for _, s := range f.secrets {
		if matches(s.Labels, label) {
			out = append(out, s)
		}
	}
	return out, nil
}

func (f *fakeEngine) CreateSecret(_ context.Context, name string, data []byte, labels map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("sec%d", f.seq)
	f.secrets[id] = dockerwatch.Secret{ID: id, Name: name, Labels: maps.Clone(labels), CreatedAt: t0}
	f.data[id] = slices.Clone(data)
	return id, nil
}

func (f *fakeEngine) RemoveSecret(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inUse[id] {
		return fmt.Errorf("secret %s is in use", id)
	}
	delete(f.secrets, id)
	return nil
}

func (f *fakeEngine) Configs(_ context.Context, label string) ([]dockerwatch.SwarmConfig, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []dockerwatch.SwarmConfig
	for _, c := range f.configs {
		if matches(c.Labels, label) {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeEngine) CreateConfig(_ context.Context, name string, data []byte, labels map[string]string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	id := fmt.Sprintf("cfg%d", f.seq)
	f.configs[id] = dockerwatch.SwarmConfig{ID: id, Name: name, Labels: maps.Clone(labels), Data: slices.Clone(data),
		CreatedAt: t0.Add(time.Duration(f.seq) * time.Millisecond)}
	return id, nil
}

func (f *fakeEngine) RemoveConfig(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.configs, id)
	return nil
}

// UpdateService applies the change like the engine: a new version, and
// (for a real change of references or a forced update) an update in
// progress.
func (f *fakeEngine) UpdateService(_ context.Context, id string, version uint64, ch dockerwatch.ServiceChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.services[id]
	if !ok {
		return dockerwatch.ErrNotFound
	}
	if s.Version != version {
		return dockerwatch.ErrServiceChanged
	}
	f.updates = append(f.updates, ch)
	if ch.SetSecrets {
		s.PreviousSecrets, s.Secrets = s.Secrets, slices.Clone(ch.Secrets)
	}
	if ch.ForceUpdate {
		s.ForceUpdate++
	}
	for k, v := range ch.Labels {
		s.Labels[k] = v
	}
	s.Version++
	s.UpdateState = "updating"
	f.services[id] = s
	return nil
}

// converge finishes a service's update: every task of it now mounts the
// spec's references, started at at.
func (f *fakeEngine) converge(id string, at time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.services[id]
	s.UpdateState = "completed"
	f.services[id] = s
	var tasks []dockerwatch.Task
	for slot := 1; slot <= s.Replicas; slot++ {
		tasks = append(tasks, dockerwatch.Task{ID: fmt.Sprintf("%s-v%d-%d", id, s.Version, slot), ServiceID: id, Slot: slot, NodeID: "node1",
			State: dockerwatch.TaskRunning, DesiredState: dockerwatch.TaskRunning, StateSince: at, Secrets: slices.Clone(s.Secrets),
			Networks: map[string]dockerwatch.Network{"app": {IPAddress: fmt.Sprintf("10.251.0.%d", 10+slot)}}})
	}
	f.tasks[id] = tasks
}

func (f *fakeEngine) secretCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.secrets)
}

// fakeProber answers every probe with one level and served fingerprint.
type fakeProber struct {
	mu     sync.Mutex
	level  probe.Level
	served string
	probed []probe.Target
}

func (p *fakeProber) Probe(_ context.Context, t probe.Target) probe.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.probed = append(p.probed, t)
	served := p.served
	if served == "" {
		served = t.ExpectedFingerprint
	}
	return probe.Result{Level: p.level, At: t0, ServedFingerprint: served}
}
