package swarm

import (
	"cmp"
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// ServiceStatus is one service as its last pass saw it, for GET
// /api/v1/swarm: the swarm view (tasks and their nodes, generations,
// rollouts) that the record-based /api/v1/status has no place for.
type ServiceStatus struct {
	Service     string       `json:"service"`
	ServiceID   string       `json:"service_id"`
	Identity    string       `json:"identity"`
	Stack       string       `json:"stack,omitempty"`
	Replicas    int          `json:"replicas,omitempty"`
	Global      bool         `json:"global,omitempty"`
	Generation  int          `json:"generation"`         // the newest complete one
	Mounted     int          `json:"mounted_generation"` // what the spec mounts
	Generations []int        `json:"generations"`        // every one still stored
	UpdateState string       `json:"update_state,omitempty"`
	Rollout     string       `json:"rollout"` // RolloutCode
	RolloutMsg  string       `json:"rollout_message,omitempty"`
	Plan        string       `json:"plan,omitempty"` // the ladder's code
	PlanMsg     string       `json:"plan_message,omitempty"`
	Degraded    string       `json:"degraded,omitempty"`
	Observed    string       `json:"observed"` // the worst running task
	Desired     string       `json:"desired"`
	Tasks       []TaskStatus `json:"tasks"`
	CheckedAt   time.Time    `json:"checked_at"`
}

// TaskStatus is one task meant to run.
type TaskStatus struct {
	Task       string   `json:"task"` // <service>.<slot>
	TaskID     string   `json:"task_id"`
	NodeID     string   `json:"node_id"`
	Node       string   `json:"node,omitempty"` // hostname, when known
	State      string   `json:"state"`
	Generation int      `json:"generation"`
	Observed   string   `json:"observed,omitempty"`
	Served     string   `json:"served_fingerprint,omitempty"`
	Findings   []string `json:"findings,omitempty"`
	Addresses  []string `json:"addresses,omitempty"`
}

// publish keeps what the pass saw for the status API, the CA rollover's
// adapters and the metrics.
func (r *Reconciler) publish(p *pass, obs []TaskObservation) {
	s := ServiceStatus{Service: p.svc.Name, ServiceID: p.svc.ID, Identity: p.identity, Stack: p.svc.Stack,
		Replicas: p.svc.Replicas, Global: p.svc.Global, Generation: p.latestN(), Mounted: MountedGeneration(p.svc.Secrets, p.gens),
		UpdateState: p.svc.UpdateState, Rollout: string(p.rollout.Code), RolloutMsg: p.rollout.Message,
		Plan: string(p.remediation.Code), PlanMsg: p.remediation.Message, Degraded: p.st.Degraded,
		Desired: string(p.desired.Level), CheckedAt: p.now}
	for _, g := range p.gens {
		s.Generations = append(s.Generations, g.N)
	}
	probed := map[string]probe.Result{}
	for _, o := range obs {
		probed[o.Task.ID] = o.Probe
	}
	worst, levels := probe.MTLS, map[NodeLevel]int{}
	for _, t := range p.tasks {
		if t.DesiredState != dockerwatch.TaskRunning {
			continue
		}
		ts := TaskStatus{Task: taskName(p.svc, t), TaskID: t.ID, NodeID: t.NodeID, State: t.State,
			Generation: MountedGeneration(t.Secrets, p.gens), Addresses: addresses(t)}
		if res, ok := probed[t.ID]; ok {
			ts.Observed, ts.Served, ts.Findings = string(res.Level), res.ServedFingerprint, reasons(res)
			if res.Level.Rank() < worst.Rank() {
				worst = res.Level
			}
			levels[NodeLevel{Node: t.NodeID, Level: string(res.Level)}]++
		}
		s.Tasks = append(s.Tasks, ts)
	}
	if len(probed) > 0 {
		s.Observed = string(worst)
	}
	slices.SortFunc(s.Tasks, func(a, b TaskStatus) int { return cmp.Compare(a.Task, b.Task) })
	r.mu.Lock()
	if r.seen == nil {
		r.seen = map[string]seenService{}
	}
	r.seen[p.svc.ID] = seenService{identity: p.identity, latest: p.latest, gens: p.gens, tasks: p.tasks, status: s}
	r.mu.Unlock()
	if r.Metrics != nil {
		r.Metrics.Tasks(p.identity, levels)
	}
}

// Statuses returns every managed service's last status, by service name.
func (r *Reconciler) Statuses() []ServiceStatus {
	r.mu.Lock()
	out := make([]ServiceStatus, 0, len(r.seen))
	for _, s := range r.seen {
		out = append(out, s.status)
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b ServiceStatus) int { return cmp.Compare(a.Service, b.Service) })
	return out
}

// NodeLister lists the swarm's nodes; *dockerwatch.Client satisfies it.
type NodeLister interface {
	Nodes(ctx context.Context) ([]dockerwatch.Node, error)
}

// StatusHandler serves GET /api/v1/swarm: every managed service with its
// tasks, the node each runs on (hostname), its generation and level.
type StatusHandler struct {
	Reconciler *Reconciler
	Nodes      NodeLister

	mu       sync.Mutex
	cached   []dockerwatch.Node
	listedAt time.Time
}

// swarmStatus is the body of GET /api/v1/swarm.
type swarmStatus struct {
	APIVersion  string             `json:"api_version"`
	GeneratedAt time.Time          `json:"generated_at"`
	Nodes       []dockerwatch.Node `json:"nodes"`
	Services    []ServiceStatus    `json:"services"`
}

// ServeHTTP implements http.Handler.
func (h *StatusHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	nodes := h.listNodes(req.Context())
	names := map[string]string{}
	for _, n := range nodes {
		names[n.ID] = n.Hostname
	}
	body := swarmStatus{APIVersion: "v1", GeneratedAt: time.Now().UTC(), Nodes: nodes, Services: h.Reconciler.Statuses()}
	for i := range body.Services {
		for j := range body.Services[i].Tasks {
			t := &body.Services[i].Tasks[j]
			t.Node = names[t.NodeID]
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(body)
}

// listNodes lists the nodes at most every 10 s; until a list works, it
// serves none.
func (h *StatusHandler) listNodes(ctx context.Context) []dockerwatch.Node {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.Nodes != nil && time.Since(h.listedAt) > 10*time.Second {
		if ns, err := h.Nodes.Nodes(ctx); err == nil {
			slices.SortFunc(ns, func(a, b dockerwatch.Node) int { return cmp.Compare(a.Hostname, b.Hostname) })
			h.cached, h.listedAt = ns, time.Now()
		}
	}
	return slices.Clone(h.cached)
}

// addresses are a task's IPs, by network name.
func addresses(t dockerwatch.Task) []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(t.Networks)) {
		n := t.Networks[name]
		for _, ip := range []string{n.IPAddress, n.IPv6} {
			if ip != "" {
				out = append(out, name+"/"+ip)
			}
		}
	}
	return out
}
