package reconcile

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"sort"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// ContainerGetter is the one Docker read a reconcile needs.
type ContainerGetter interface {
	Inspect(ctx context.Context, id string) (dockerwatch.Container, error)
}

// BundleVolume is the shared certs volume as the reconciler uses it.
type BundleVolume interface {
	ReadBundle(service string) (*certs.BundleFiles, error)
	WriteBundle(service string, b *certs.BundleFiles, owner certs.Owner) (string, error)
	WriteCA(service string, caPEM []byte, owner certs.Owner) (string, error)
	FixPermissions(service string, owner certs.Owner) error
	Relink(service string, b *certs.BundleFiles, owner certs.Owner) (string, error)
}

// RecordStore is the controller's state as the reconciler uses it.
type RecordStore interface {
	Get(id string) (state.Record, bool, error)
	Put(r state.Record) error
	// Note stores a record that differs from the stored one only in what a
	// crash may lose (a probe's time): readers see it at once, the file
	// with the next flush.
	Note(r state.Record) error
	Delete(id string) error
	// ListService returns the records of one service's containers, through
	// an index: its cost follows the service's replicas, not the stack.
	ListService(service string) ([]state.Record, error)
}

// Metrics receives what a reconcile did. A nil Metrics is valid.
type Metrics interface {
	BundleIssued(reason string)
	// Observed reports one probe of a container and what the ladder made
	// of it.
	Observed(o Observed)
	// Remediated counts one remediation action and its result (ok, error,
	// dry-run, rate-limited).
	Remediated(action, result string)
	// Forget drops a container's label series when it is gone.
	Forget(service, container string)
	// ForgetService drops a service's certificate series when its last
	// container is gone: its bundle stays on disk for a rebuild, but no
	// one serves it, and its expiry is nobody's alarm.
	ForgetService(service string)
	// Expiry reports a certificate's NotAfter by service and kind (server,
	// client, served).
	Expiry(service, kind string, notAfter time.Time)
	// Renewal reports a service's last and next renewal times.
	Renewal(service string, last, next time.Time)
	// IdentityFindings reports a container's identity findings by code,
	// none when it has none (any more).
	IdentityFindings(service, container string, reasons []IdentityReason)
	// BundleLatency reports how long after a new container's create event
	// its first bundle was on disk: from the event's own time (the engine's
	// delay included) and from when the controller received it (its own).
	BundleLatency(fromEvent, fromReceipt time.Duration)
}

// Observed is one probe of a container as metrics see it.
type Observed struct {
	Service, Container string
	Level, Desired     probe.Level
	// Drift: observed < desired; BelowFloor: observed < floor; Degraded:
	// the ladder gave up (or only reports) while the drift stays.
	Drift, BelowFloor, Degraded bool
	Took                        time.Duration // the probe's wall time
}

// Arrivals tells when containers' create events happened and arrived.
// *dockerwatch.Interventions implements it.
type Arrivals interface {
	TakeCreated(id string) (dockerwatch.Arrival, bool)
}

// Prober measures what a container serves.
type Prober interface {
	Probe(ctx context.Context, t probe.Target) probe.Result
}

// ContainerActions are the remediation steps on the Docker side.
type ContainerActions interface {
	Restart(ctx context.Context, id string, timeout time.Duration) error
	Signal(ctx context.Context, id, signal string) error
	Recreate(ctx context.Context, id string, addLabels map[string]string, removeLabels []string, stopTimeout time.Duration) (string, error)
}

// RateLimiter bounds container actions across the whole stack, so a CA
// rollover or a bad policy never restarts every service at once.
type RateLimiter interface {
	// Reserve takes a token and returns 0, or returns how long to wait.
	Reserve(now time.Time) time.Duration
}

// ContainerReconciler ensures that every managed container has a valid bundle in the
// shared volume and records what it found. It is level-triggered: each call
// re-inspects the container and re-reads the bundle and the state, and never
// trusts what the event that queued the key said.
type ContainerReconciler struct {
	Containers ContainerGetter
	// Known, when set, answers the inspect a reconcile starts with from
	// what is already known of the container, as long as nothing said it
	// changed (dockerwatch.Client.Known): a settled container's periodic
	// probe then costs no inspect. Inspects that precede an action always
	// go to Containers.
	Known     ContainerGetter
	Volume    BundleVolume
	Authority *certs.Authority
	Records   RecordStore
	// Identities remembers who owns each identity; required.
	Identities IdentityStore
	// Reserved are identity names no container may claim, each with what
	// holds it ("the controller", "the operator's client bundle").
	Reserved map[string]string
	// TrustImageLabels accepts crank.security.* labels that a container's
	// image supplied. Off, they are ignored and reported: anyone who can
	// publish an image could otherwise claim an identity through it.
	TrustImageLabels bool
	// Interventions tells stops by others from the controller's own; nil
	// means none are known (tests of other concerns).
	Interventions Interventions
	// Arrivals, when set, measures event -> bundle for new containers.
	Arrivals Arrivals
	Scope    Scope
	// TrustDomain is the SPIFFE trust domain of client identities.
	TrustDomain string
	// Issue is the template for new leaves; Now is set per call.
	Issue certs.IssueOptions
	// RenewFraction of a leaf's lifetime after which it is renewed (2/3).
	RenewFraction float64
	Log           *slog.Logger
	Metrics       Metrics
	// Prober, when set, turns on probing and remediation; without it the
	// reconciler only maintains bundles.
	Prober Prober
	// Actions restart, signal and recreate containers.
	Actions ContainerActions
	// Levels is the level policy: environment, mode, budget, backoff.
	Levels Policy
	// Limiter is the global action rate limit; nil means unlimited.
	Limiter RateLimiter
	// RolloverNeed, if set, says what a CA rollover in progress needs of a
	// process, from what the probe just saw (see phase_reload.go). Nil: no
	// rollover reloads; every reload is on the drift budget.
	RolloverNeed func(observed probe.Level, findings []probe.Reason) RolloverNeed
	// ProbeInterval is how often a managed container is probed.
	ProbeInterval time.Duration
	// SharedNetworks are the controller's own networks; probes only go to
	// container addresses on them. Empty means every address.
	SharedNetworks []string
	// ExpiryWarn are thresholds before a leaf's expiry at which a WARN is
	// logged once each (renewal normally happens long before; reaching
	// one means renewal or reload is failing).
	ExpiryWarn []time.Duration
	// StopTimeout is given to Docker for restarts and recreates.
	StopTimeout time.Duration

	// Clock and Jitter are seams for tests. Jitter returns the random delay
	// added to a renewal time for a leaf of the given lifetime.
	Clock  func() time.Time
	Jitter func(lifetime time.Duration) time.Duration

	locks keyedMutex
	// validator remembers each service's last validation, so a pass over
	// a settled container parses no key and verifies no chain again.
	validator certs.Validator
}

// minRequeue bounds how soon a bundle that is already due is looked at again,
// so a renewal that keeps failing validation cannot spin.
const minRequeue = time.Second

// Reconcile brings container id's bundle to the desired state. Errors are
// retried with backoff by the controller, unless wrapped with Terminal.
// The logger comes from ctx (the worker puts one there carrying the
// reconcile ID), so every line of one reconcile shares one ID.
func (r *ContainerReconciler) Reconcile(ctx context.Context, id string) (Result, error) {
	log := r.reconcileLogger(ctx, id)
	c, err := r.inspectKnown(ctx, id)
	if errors.Is(err, dockerwatch.ErrNotFound) {
		return Result{}, r.forget(id, log)
	}
	if err != nil {
		return Result{}, fmt.Errorf("inspecting container %s: %w", dockerwatch.ShortID(id), err)
	}
	log = log.With(keyContainer, c.Name)
	c, idFindings := TrustedLabels(c, r.TrustImageLabels)
	if !r.admit(c, idFindings, log) {
		return Result{}, r.forget(id, log)
	}
	service, err := ServiceName(c)
	if err != nil {
		return Result{}, Terminal(err)
	}
	log = log.With(keyService, service)
	if f, ok, err := r.claim(c, service); err != nil {
		return Result{}, err
	} else if !ok {
		return r.refuse(c, service, append(idFindings, f), log)
	}
	// Replicas of one service share one bundle directory; serialise them.
	unlock, c, err := r.lockService(ctx, c, service)
	if errors.Is(err, dockerwatch.ErrNotFound) {
		return Result{}, r.forget(id, log)
	}
	if err != nil {
		return Result{}, err
	}
	defer unlock()
	return r.reconcilePass(ctx, &pass{c: c, service: service, log: log, now: r.now(), idFindings: idFindings})
}

// admit reports whether c is managed, logging what the operator should
// know about a container that is not.
func (r *ContainerReconciler) admit(c dockerwatch.Container, idFindings []IdentityFinding, log *slog.Logger) bool {
	scope := r.Scope.Managed(c)
	if scope.Managed() {
		return true
	}
	if scope == ScopeInvalidLabel {
		log.Warn("container not managed: "+r.Scope.Explain(scope, c), keyReason, string(scope))
	}
	for _, f := range idFindings {
		log.Warn("container not managed: "+f.Message, keyReason, string(f.Reason))
	}
	return false
}

// lockService takes service's lock. Waiting for it can take as long as
// another replica's restart: then c is inspected again, so nothing below
// acts on stale state. Not otherwise: on a create, a second inspect would
// queue behind `docker start`, which holds the container's lock in the
// engine, and the bundle would land after the process started.
func (r *ContainerReconciler) lockService(ctx context.Context, c dockerwatch.Container, service string) (func(), dockerwatch.Container, error) {
	waitStart := time.Now()
	unlock := r.locks.lock(service)
	if time.Since(waitStart) <= lockWaitReinspect {
		return unlock, c, nil
	}
	cur, err := r.inspect(ctx, c.ID)
	if err != nil {
		unlock()
		return nil, c, fmt.Errorf("inspecting container %s: %w", dockerwatch.ShortID(c.ID), err)
	}
	cur, _ = TrustedLabels(cur, r.TrustImageLabels)
	return unlock, cur, nil
}

// reconcilePass runs the steps of one reconcile in order: the bundle
// (gather, decide, write), the record of what is on disk, the probe and
// remediation, and the schedule of the next look.
func (r *ContainerReconciler) reconcilePass(ctx context.Context, p *pass) (Result, error) {
	if err := r.gatherBundle(p); err != nil {
		return Result{}, err
	}
	if err := r.ensureBundle(p); err != nil {
		return Result{}, err
	}
	if err := r.noteBundle(p); err != nil {
		return Result{}, err
	}
	if r.Prober != nil {
		gone, err := r.observe(ctx, p)
		if err != nil && ctx.Err() != nil {
			// Stopped while probing: what the pass did before the probe (an
			// issuance above all) is still recorded, without an observation.
			return Result{}, errors.Join(err, r.save(p))
		}
		if err != nil {
			return Result{}, err
		}
		if gone {
			// Relabelled: the old container no longer exists; its
			// replacement is reconciled under its own ID.
			return Result{}, r.Records.Delete(p.c.ID)
		}
	}
	return r.schedule(p)
}

// lockWaitReinspect is how long a wait for the service lock makes the
// first inspect too old to act on.
const lockWaitReinspect = 100 * time.Millisecond

// inspectTimeout bounds one inspect; a hung engine call must not hold a
// worker forever.
const inspectTimeout = 30 * time.Second

func (r *ContainerReconciler) inspect(ctx context.Context, id string) (dockerwatch.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	return r.Containers.Inspect(ctx, id)
}

// inspectKnown is inspect answered by Known where it is set.
func (r *ContainerReconciler) inspectKnown(ctx context.Context, id string) (dockerwatch.Container, error) {
	if r.Known == nil {
		return r.inspect(ctx, id)
	}
	ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
	defer cancel()
	return r.Known.Inspect(ctx, id)
}

// forget drops the record of a container that is gone or no longer managed.
// Its service's bundle is kept: a rebuild recreates the container under a new
// ID moments later and must find the same certificates (README: "Bundle
// retention").
func (r *ContainerReconciler) forget(id string, log *slog.Logger) error {
	rec, ok, err := r.Records.Get(id)
	if err != nil {
		return fmt.Errorf("reading state of %s: %w", dockerwatch.ShortID(id), err)
	}
	if !ok {
		return nil
	}
	if err := r.Records.Delete(id); err != nil {
		return fmt.Errorf("deleting state of %s: %w", dockerwatch.ShortID(id), err)
	}
	r.validator.Forget(rec.Service)
	if r.Metrics != nil {
		r.forgetSeries(rec)
	}
	log.Info(fmt.Sprintf("%s: container gone or no longer managed; record removed, bundle kept", rec.Service), keyService, rec.Service)
	return nil
}

// forgetSeries drops the metrics of a container whose record is gone, and
// its service's too when no record of the service is left.
func (r *ContainerReconciler) forgetSeries(rec state.Record) {
	r.Metrics.Forget(rec.Service, rec.ContainerName)
	left, err := r.Records.ListService(rec.Service)
	if err == nil && len(left) == 0 {
		r.Metrics.ForgetService(rec.Service)
	}
}

// replicaNames returns the DNS names of the other containers recorded for
// service, so a reissue covers every replica sharing the bundle.
func replicaNames(records []state.Record, service, selfID string) []string {
	var names []string
	for _, rec := range records {
		if rec.Service == service && rec.ContainerID != selfID && !rec.Identity.Refused {
			names = append(names, rec.DNSNames...)
		}
	}
	sort.Strings(names)
	return names
}

func keyMode(o certs.Owner) fs.FileMode {
	if o.GroupRead {
		return 0o640
	}
	return 0o600
}

func (r *ContainerReconciler) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func (r *ContainerReconciler) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock()
}

func (r *ContainerReconciler) renewFraction() float64 {
	if r.RenewFraction <= 0 || r.RenewFraction >= 1 {
		return 2.0 / 3.0
	}
	return r.RenewFraction
}

// jitter spreads renewals by up to 2% of the leaf lifetime (at most an
// hour), so bundles issued together don't all renew together.
func (r *ContainerReconciler) jitter(lifetime time.Duration) time.Duration {
	if r.Jitter != nil {
		return r.Jitter(lifetime)
	}
	limit := min(lifetime/50, time.Hour)
	if limit <= 0 {
		return 0
	}
	n, err := rand.Int(rand.Reader, big.NewInt(int64(limit)))
	if err != nil {
		return 0
	}
	return time.Duration(n.Int64())
}
