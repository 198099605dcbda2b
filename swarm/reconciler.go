package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// Engine is the swarm API as the reconciler uses it; *dockerwatch.Client
// satisfies it.
type Engine interface {
	Service(ctx context.Context, id string) (dockerwatch.Service, error)
	Services(ctx context.Context) ([]dockerwatch.Service, error)
	Tasks(ctx context.Context, serviceID string) ([]dockerwatch.Task, error)
	Secrets(ctx context.Context, label string) ([]dockerwatch.Secret, error)
	CreateSecret(ctx context.Context, name string, data []byte, labels map[string]string) (string, error)
	RemoveSecret(ctx context.Context, id string) error
	Configs(ctx context.Context, label string) ([]dockerwatch.SwarmConfig, error)
	CreateConfig(ctx context.Context, name string, data []byte, labels map[string]string) (string, error)
	RemoveConfig(ctx context.Context, id string) error
	UpdateService(ctx context.Context, id string, version uint64, ch dockerwatch.ServiceChange) error
	ImagePorts(ctx context.Context, ref string) ([]dockerwatch.Port, error)
}

// Authority issues bundles; *certs.Authority satisfies it.
type Authority interface {
	IssueBundle(id certs.Identity, opts certs.IssueOptions) (*certs.BundleFiles, certs.IssueInfo, error)
	Active() *certs.CA
	TrustBundle() []byte
}

// Store is the state store as the reconciler uses it: one record per task
// (keyed by task ID, so the status API and the CA rollover read tasks as
// they read containers), the services' episodes as meta, and the owners of
// identities.
type Store interface {
	Get(id string) (state.Record, bool, error)
	Put(r state.Record) error
	Delete(id string) error
	ListService(service string) ([]state.Record, error)
	GetMeta(key string, v any) (bool, error)
	PutMeta(key string, v any) error
	reconcile.IdentityStore
}

// Prober measures what a task serves; *probe.Prober satisfies it.
type Prober interface {
	Probe(ctx context.Context, t probe.Target) probe.Result
}

// Reconciler brings one swarm service at a time (the key is its ID) to the
// desired state: a current bundle generation in swarm secrets, mounted by
// the service's references, every running task probed, and the ladder's
// action taken as a service update. It is level-triggered: each call reads
// the service, its tasks, its secrets and its state again.
type Reconciler struct {
	Engine    Engine
	Authority Authority
	Store     Store
	Prober    Prober
	Limiter   reconcile.RateLimiter // the global action limit; nil: none
	Scope     Scope
	Reserved  map[string]string // identity names no service may claim
	Root      string            // where bundles are mounted in tasks, e.g. /certs
	Networks  []string          // the controller's overlay networks: the only ones probed
	Levels    reconcile.Policy
	Issue     certs.IssueOptions
	Renew     float64 // fraction of a leaf's lifetime after which it is renewed
	Domain    string  // SPIFFE trust domain
	Interval  time.Duration
	Metrics   Metrics
	Log       *slog.Logger
	Clock     func() time.Time
	// Jitter is the delay added to a renewal of a leaf of that lifetime.
	Jitter func(lifetime time.Duration) time.Duration

	mu    sync.Mutex
	seen  map[string]seenService // by service ID
	tasks map[string]string      // task ID -> service ID
	notes map[string]string      // last message logged per service and topic
}

// seenService is what the last pass of a service found, for the CA
// rollover's adapters, the sweep and the status API.
type seenService struct {
	identity string
	latest   *Generation
	gens     []Generation
	tasks    []dockerwatch.Task
	status   ServiceStatus
}

// errNotManaged ends a pass for a service the controller leaves alone.
var errNotManaged = errors.New("not managed")

// Reconcile implements reconcile.Reconciler for service id.
func (r *Reconciler) Reconcile(ctx context.Context, id string) (reconcile.Result, error) {
	p, err := r.gather(ctx, id)
	switch {
	case errors.Is(err, dockerwatch.ErrNotFound):
		return reconcile.Result{}, r.forget(ctx, id)
	case errors.Is(err, errNotManaged):
		// Its labels can only change by a service update, which is an event.
		return reconcile.Result{}, r.forget(ctx, id)
	case err != nil:
		return reconcile.Result{}, err
	case p.refused != nil:
		return reconcile.Result{RequeueAfter: r.interval()}, r.recordRefusal(p)
	}
	if err := r.ensureBundle(ctx, p); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.rollout(ctx, p); err != nil {
		return reconcile.Result{}, err
	}
	obs := r.probeTasks(ctx, p)
	if err := r.remediate(ctx, p, obs); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.record(p, obs); err != nil {
		return reconcile.Result{}, err
	}
	if err := r.collect(ctx, p); err != nil {
		p.log.Warn("removing old bundle generations; retried at the next pass", keyError, err)
	}
	return reconcile.Result{RequeueAfter: p.requeue(r.interval())}, nil
}

// pass is one reconcile's gathered inputs and what it decided so far.
type pass struct {
	svc      dockerwatch.Service
	identity string
	claimant state.IdentityOwner
	refused  *reconcile.IdentityFinding
	wanted   certs.Identity
	findings []reconcile.IdentityFinding
	desired  reconcile.Desired
	owner    certs.Owner
	tasks    []dockerwatch.Task
	gens     []Generation
	latest   *Generation
	st       ServiceState
	stSaved  ServiceState
	rolling  bool
	rollout  RolloutPlan
	// remediation is the ladder's decision for the service.
	remediation Remediation
	now         time.Time
	retry       time.Time
	log         *slog.Logger
}

// retryAt asks for the next pass no later than at.
func (p *pass) retryAt(at time.Time) {
	if !at.IsZero() && (p.retry.IsZero() || at.Before(p.retry)) {
		p.retry = at
	}
}

// requeue is when to look again: the earliest of a pending retry, the
// renewal of the newest generation and the probe interval.
func (p *pass) requeue(interval time.Duration) time.Duration {
	if p.latest != nil && p.latest.Manifest != nil {
		p.retryAt(p.latest.Manifest.RenewAt)
	}
	d := interval
	if !p.retry.IsZero() {
		d = min(d, max(p.retry.Sub(p.now), 100*time.Millisecond))
	}
	return d
}

func (r *Reconciler) gather(ctx context.Context, id string) (*pass, error) {
	svc, err := r.Engine.Service(ctx, id)
	if err != nil {
		return nil, err
	}
	log := r.logger(ctx).With(keyService, svc.Name)
	if reason, why := r.Scope.Managed(svc); !reason.Managed() {
		r.note(svc.ID, "scope", why, func(msg string) { log.Debug("service not managed: "+msg, keyReason, string(reason)) })
		return nil, errNotManaged
	}
	identity, err := IdentityName(svc)
	if err != nil {
		r.note(svc.ID, "identity", err.Error(), func(msg string) { log.Warn("service not managed: "+msg, keyError, err) })
		return nil, errNotManaged
	}
	desired, err := r.Levels.DesiredFor(AsContainer(svc))
	if err != nil {
		r.note(svc.ID, "labels", err.Error(), func(msg string) { log.Warn("service not managed: bad label: " + msg) })
		return nil, errNotManaged
	}
	p := &pass{svc: svc, identity: identity, claimant: Claimant(svc), desired: desired, now: r.now(),
		log: log.With(keyIdentity, identity)}
	if err := r.gatherEngine(ctx, p); err != nil {
		return nil, err
	}
	if err := r.judgeIdentity(p); err != nil {
		return nil, err
	}
	return p, r.loadState(p)
}

// gatherEngine reads the service's tasks and its identity's generations.
func (r *Reconciler) gatherEngine(ctx context.Context, p *pass) error {
	var err error
	if p.tasks, err = r.Engine.Tasks(ctx, p.svc.ID); err != nil {
		return err
	}
	ports, err := r.Engine.ImagePorts(ctx, p.svc.Image)
	if err != nil {
		p.log.Debug("no image ports: probing by labels, environment and published ports", keyError, err)
	}
	p.svc.TargetPorts = mergePorts(p.svc.TargetPorts, ports)
	label := LabelIdentity + "=" + p.identity
	secrets, err := r.Engine.Secrets(ctx, label)
	if err != nil {
		return err
	}
	configs, err := r.Engine.Configs(ctx, label)
	if err != nil {
		return err
	}
	p.gens = Generations(p.identity, secrets, configs)
	p.latest = Latest(p.gens)
	owner, gap, err := reconcile.OwnerFor(AsContainer(p.svc))
	if err != nil {
		return reconcile.Terminal(err)
	}
	if gap != "" {
		r.note(p.svc.ID, "owner", gap, func(msg string) { p.log.Warn(msg) })
	}
	p.owner = owner
	return nil
}

func (r *Reconciler) interval() time.Duration {
	if r.Interval <= 0 {
		return 30 * time.Second
	}
	return r.Interval
}

func (r *Reconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock()
}

func (r *Reconciler) logger(ctx context.Context) *slog.Logger {
	if l := reconcile.LoggerFrom(ctx); l != nil {
		return l
	}
	if r.Log != nil {
		return r.Log
	}
	return slog.New(slog.DiscardHandler)
}

// note calls log with msg the first time msg is seen for (id, topic), so a
// condition that holds for hours is logged once, and again when it changes.
func (r *Reconciler) note(id, topic, msg string, log func(string)) {
	r.mu.Lock()
	if r.notes == nil {
		r.notes = map[string]string{}
	}
	key := id + "/" + topic
	same := r.notes[key] == msg
	r.notes[key] = msg
	r.mu.Unlock()
	if !same && msg != "" {
		log(msg)
	}
}

// stateKey is the meta key of a service's ServiceState.
func stateKey(name string) string { return "swarm_service:" + name }

func (r *Reconciler) loadState(p *pass) error {
	if _, err := r.Store.GetMeta(stateKey(p.svc.Name), &p.st); err != nil {
		// A cache like the rest of the store: start the episode over.
		p.log.Warn("service state does not decode; starting over", keyError, err)
		p.st = ServiceState{}
	}
	p.stSaved = p.st
	return nil
}

func (r *Reconciler) saveState(p *pass) error {
	if p.st == p.stSaved {
		return nil
	}
	if err := r.Store.PutMeta(stateKey(p.svc.Name), p.st); err != nil {
		return fmt.Errorf("saving the state of service %s: %w", p.svc.Name, err)
	}
	p.stSaved = p.st
	return nil
}

// mergePorts is a's ports then b's, without duplicates: a service's
// exposed ports are its endpoint's target ports and its image's EXPOSE
// (when the manager has the image), as a container's are its image's.
func mergePorts(a, b []dockerwatch.Port) []dockerwatch.Port {
	out := slices.Clone(a)
	for _, p := range b {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}
