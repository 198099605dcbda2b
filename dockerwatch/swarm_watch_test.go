package dockerwatch

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/swarm"
)

// fakeSwarmAPI adds services and tasks to the fake daemon; Events and Ping
// come from fakeAPI, so the call log shows "subscribe" before "list".
type fakeSwarmAPI struct {
	*fakeAPI
	services []swarm.Service
	tasks    []swarm.Task
}

func (f *fakeSwarmAPI) ServiceList(context.Context, swarm.ServiceListOptions) ([]swarm.Service, error) {
	f.record("list")
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.services), nil
}

func (f *fakeSwarmAPI) TaskList(_ context.Context, opts swarm.TaskListOptions) ([]swarm.Task, error) {
	if got := opts.Filters.Get("desired-state"); !slices.Equal(got, []string{"running"}) {
		panic("TaskList without desired-state=running lists the whole task history")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tasks), nil
}

func startSwarmWatcher(t *testing.T, api *fakeSwarmAPI, resync time.Duration) *fakeQueue {
	t.Helper()
	q := &fakeQueue{}
	w := NewSwarmWatcher(api, q, WatcherOptions{
		Resync: resync, WatchdogInterval: time.Hour, RequestTimeout: time.Second,
		InitialBackoff: time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = w.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "swarm watcher ready", w.Ready)
	return q
}

func service(id string, version uint64) swarm.Service {
	return swarm.Service{ID: id, Meta: swarm.Meta{Version: swarm.Version{Index: version}}}
}

func TestSwarmWatcherSubscribesFirstThenEnqueuesEveryService(t *testing.T) {
	t.Parallel()
	api := &fakeSwarmAPI{fakeAPI: &fakeAPI{}, services: []swarm.Service{service("s1", 1), service("s2", 4)}}
	q := startSwarmWatcher(t, api, time.Hour)

	if log := api.callLog(); len(log) < 2 || log[0] != "subscribe" || log[1] != "list" {
		t.Fatalf("got calls %v, want subscribe then list", log)
	}
	if got := q.count("s1") + q.count("s2"); got != 2 {
		t.Errorf("got %d services enqueued by the first list, want 2", got)
	}
	f := api.stream(t, 1).opts.Filters
	if got := f.Get("type"); !slices.Contains(got, "service") || !slices.Contains(got, "container") {
		t.Errorf("got event types %v, want service and container", got)
	}
}

func TestSwarmWatcherKeysEventsByService(t *testing.T) {
	t.Parallel()
	api := &fakeSwarmAPI{fakeAPI: &fakeAPI{}}
	q := startSwarmWatcher(t, api, time.Hour)
	s := api.stream(t, 1)

	s.send(t, events.Message{Type: events.ServiceEventType, Action: events.ActionUpdate, Actor: events.Actor{ID: "svc-a"}})
	s.send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionDie,
		Actor: events.Actor{ID: "ctr-1", Attributes: map[string]string{LabelSwarmServiceID: "svc-b"}}})
	s.send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: events.Actor{ID: "plain-ctr"}})
	// A marker event proves the three before it were handled.
	s.send(t, events.Message{Type: events.ServiceEventType, Action: events.ActionRemove, Actor: events.Actor{ID: "marker"}})
	waitFor(t, "marker enqueued", func() bool { return q.count("marker") == 1 })

	for key, want := range map[string]int{"svc-a": 1, "svc-b": 1, "ctr-1": 0, "plain-ctr": 0} {
		if got := q.count(key); got != want {
			t.Errorf("key %s: got %d adds, want %d", key, got, want)
		}
	}
}

func TestSwarmWatcherResyncEnqueuesServicesWhoseTasksChanged(t *testing.T) {
	t.Parallel()
	api := &fakeSwarmAPI{fakeAPI: &fakeAPI{},
		services: []swarm.Service{service("s1", 1), service("s2", 1)},
		tasks:    []swarm.Task{{ID: "t1", ServiceID: "s1", Status: swarm.TaskStatus{State: swarm.TaskStateRunning}}},
	}
	q := startSwarmWatcher(t, api, 20*time.Millisecond)
	// A task of s1 died on another node: no event reaches this one.
	api.mu.Lock()
	api.tasks = []swarm.Task{{ID: "t2", ServiceID: "s1", Status: swarm.TaskStatus{State: swarm.TaskStateStarting}}}
	api.mu.Unlock()

	waitFor(t, "s1 enqueued again by a resync", func() bool { return q.count("s1") >= 2 })
	lists := api.count("list")
	waitFor(t, "two more resyncs", func() bool { return api.count("list") >= lists+2 })
	if got := q.count("s2"); got != 1 {
		t.Errorf("s2 (unchanged) enqueued %d times, want 1 (only by the first list)", got)
	}
}

func TestSwarmSourceKey(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		m    events.Message
		want string // the key enqueued; "" for none
	}{
		"should key a service event by the service": {
			m: events.Message{Type: events.ServiceEventType, Actor: events.Actor{ID: "svc"}}, want: "svc"},
		"should key a task container's event by its service": {
			m:    events.Message{Type: events.ContainerEventType, Actor: events.Actor{ID: "c", Attributes: map[string]string{LabelSwarmServiceID: "svc"}}},
			want: "svc"},
		"should ignore a container that is no swarm task": {
			m: events.Message{Type: events.ContainerEventType, Actor: events.Actor{ID: "c"}}},
		"should ignore other event types": {
			m: events.Message{Type: events.NetworkEventType, Actor: events.Actor{ID: "n"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := (swarmSource{}).key(tc.m); got != tc.want {
				t.Errorf("got key %q, want %q", got, tc.want)
			}
		})
	}
}
