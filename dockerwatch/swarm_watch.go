package dockerwatch

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// SwarmEventsAPI is the part of the SDK client a swarm Watcher uses, with
// the SDK's exact signatures. *client.Client satisfies it.
type SwarmEventsAPI interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	Ping(ctx context.Context) (types.Ping, error)
	ServiceList(ctx context.Context, options swarm.ServiceListOptions) ([]swarm.Service, error)
	TaskList(ctx context.Context, options swarm.TaskListOptions) ([]swarm.Task, error)
}

var _ SwarmEventsAPI = (*client.Client)(nil)

// NewSwarmWatcher returns a Watcher of swarm services: it adds service IDs
// to q. It has the discipline of the container Watcher (subscribe, then
// list; resync; reconnect with backoff; watchdog), and must run on a
// manager.
//
// The engine publishes no task events. A service's spec and update state
// come as service events (create, update with updatestate.*, remove), from
// every node, on any manager; a task's container starting or dying comes as
// a container event only on the node that runs it. So the watcher takes
// service events and the container events of swarm tasks on its own node,
// and the resync lists every service with its running tasks, so a task
// that changed on another node is caught at the next resync; the
// reconciler also looks at each service at its own probe interval.
func NewSwarmWatcher(api SwarmEventsAPI, q Enqueuer, opts WatcherOptions) *Watcher {
	return newWatcher(api, swarmSource{api}, q, opts)
}

// swarmTaskActions are the container events of a task that change what
// its service serves.
var swarmTaskActions = []events.Action{events.ActionStart, events.ActionDie, events.ActionDestroy, events.ActionHealthStatus}

type swarmSource struct{ api SwarmEventsAPI }

// filters subscribes to every service event and to the task container
// events above. A label filter cannot narrow the container events to
// tasks: the daemon would apply it to service events too, which carry no
// labels, so other containers' events are received and dropped (key "").
func (swarmSource) filters() filters.Args {
	f := filters.NewArgs(
		filters.Arg("type", string(events.ServiceEventType)),
		filters.Arg("type", string(events.ContainerEventType)),
	)
	for _, a := range []events.Action{events.ActionCreate, events.ActionUpdate, events.ActionRemove} {
		f.Add("event", string(a))
	}
	for _, a := range swarmTaskActions {
		f.Add("event", string(a))
	}
	return f
}

// key is the service an event concerns: the actor of a service event, the
// service a task container belongs to, and "" for any other container.
func (swarmSource) key(m events.Message) string {
	switch m.Type {
	case events.ServiceEventType:
		return m.Actor.ID
	case events.ContainerEventType:
		return m.Actor.Attributes[LabelSwarmServiceID]
	}
	return ""
}

func (swarmSource) countKey() string           { return keyServices }
func (swarmSource) queues(events.Message) bool { return true }

// list fingerprints each service by its spec version, its update state and
// the set of its running tasks, so a resync enqueues a service whose tasks
// changed on another node.
func (s swarmSource) list(ctx context.Context) (map[string]string, error) {
	svcs, err := s.api.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	tasks, err := s.api.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, fmt.Errorf("listing tasks: %w", err)
	}
	running := map[string][]string{}
	for _, t := range tasks {
		running[t.ServiceID] = append(running[t.ServiceID], t.ID+":"+string(t.Status.State))
	}
	out := make(map[string]string, len(svcs))
	for _, svc := range svcs {
		state := strconv.FormatUint(svc.Version.Index, 10)
		if us := svc.UpdateStatus; us != nil {
			state += "/" + string(us.State)
		}
		ts := running[svc.ID]
		slices.Sort(ts)
		out[svc.ID] = state + "/" + strings.Join(ts, ",")
	}
	return out, nil
}
