package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"sort"
	"strings"
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
}

// RecordStore is the controller's state as the reconciler uses it.
type RecordStore interface {
	Get(id string) (state.Record, bool, error)
	Put(r state.Record) error
	Delete(id string) error
	List() ([]state.Record, error)
}

// Metrics receives what a reconcile did. A nil Metrics is valid.
type Metrics interface {
	BundleIssued(reason string)
	// Observed reports one probe of a container against its desired level.
	Observed(service, container string, observed, desired probe.Level, drift bool, took time.Duration)
	// Remediated counts one remediation action and its result (ok, error,
	// dry-run, rate-limited).
	Remediated(action, result string)
	// Forget drops a container's label series when it is gone.
	Forget(service, container string)
	// Expiry reports a certificate's NotAfter by service and kind (server,
	// client, served).
	Expiry(service, kind string, notAfter time.Time)
	// Renewal reports a service's last and next renewal times.
	Renewal(service string, last, next time.Time)
	// IdentityFindings reports a container's identity findings by code,
	// none when it has none (any more).
	IdentityFindings(service, container string, reasons []IdentityReason)
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
	Volume     BundleVolume
	Authority  *certs.Authority
	Records    RecordStore
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
	Scope         Scope
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
}

// minRequeue bounds how soon a bundle that is already due is looked at again,
// so a renewal that keeps failing validation cannot spin.
const minRequeue = time.Second

// Reconcile brings container id's bundle to the desired state. Errors are
// retried with backoff by the controller, unless wrapped with Terminal.
func (r *ContainerReconciler) Reconcile(ctx context.Context, id string) (Result, error) {
	log := r.logger().With(keyReconcileID, newReconcileID(), keyContainerID, dockerwatch.ShortID(id))
	c, err := r.inspect(ctx, id)
	if errors.Is(err, dockerwatch.ErrNotFound) {
		return Result{}, r.forget(id, log)
	}
	if err != nil {
		return Result{}, fmt.Errorf("inspecting container %s: %w", dockerwatch.ShortID(id), err)
	}
	log = log.With(keyContainer, c.Name)
	c, idFindings := TrustedLabels(c, r.TrustImageLabels)
	if managed, why := r.Scope.Managed(c); !managed {
		if strings.HasPrefix(why, "invalid") {
			log.Warn("container not managed", keyReason, why)
		}
		for _, f := range idFindings {
			log.Warn("container not managed: "+f.Message, keyReason, string(f.Reason))
		}
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
	waitStart := time.Now()
	unlock := r.locks.lock(service)
	defer unlock()
	// Waiting for the lock can take as long as another replica's restart:
	// then look at the container again, so nothing below acts on stale
	// state. Not otherwise: on a create, a second inspect would queue
	// behind `docker start`, which holds the container's lock in the
	// engine, and the bundle would land after the process started.
	if time.Since(waitStart) > lockWaitReinspect {
		if c, err = r.inspect(ctx, id); errors.Is(err, dockerwatch.ErrNotFound) {
			return Result{}, r.forget(id, log)
		} else if err != nil {
			return Result{}, fmt.Errorf("inspecting container %s: %w", dockerwatch.ShortID(id), err)
		}
	}
	return r.reconcileBundle(ctx, c, service, idFindings, log)
}

func (r *ContainerReconciler) reconcileBundle(ctx context.Context, c dockerwatch.Container, service string, idFindings []IdentityFinding, log *slog.Logger) (Result, error) {
	now := r.now()
	owner, ownerGap, err := OwnerFor(c)
	if err != nil {
		return Result{}, Terminal(err)
	}
	if ownerGap != "" {
		log.Warn("bundle ownership", keyReason, ownerGap)
	}
	records, err := r.Records.List()
	if err != nil {
		return Result{}, fmt.Errorf("listing state records: %w", err)
	}
	identity := IdentityFor(c, service, r.TrustDomain, replicaNames(records, service, c.ID))
	var dropped []IdentityFinding
	identity.DNSNames, dropped = DropForeignNames(identity.DNSNames, service, r.foreignOwner(c))
	idFindings = append(idFindings, dropped...)

	bundle, err := r.Volume.ReadBundle(service)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("reading bundle of %s: %w", service, err)
	}
	if err != nil {
		bundle = nil
	}
	keyOwner := ownerString(owner)
	if who, conflict := ownerConflict(records, service, c.ID, keyOwner); conflict {
		idFindings = append(idFindings, IdentityFinding{Reason: OwnerConflict, Message: fmt.Sprintf(
			"replicas of %s need different key owners (this one %s, %s); the keys keep the owner they have", service, keyOwner, who)})
		owner = ownerOnDisk(bundle, owner)
	}
	expect := certs.Expectation{
		Identity:      identity,
		Authority:     r.Authority,
		RenewFraction: r.renewFraction(),
		KeyMode:       keyMode(owner),
		Now:           now,
	}
	findings := append(certs.Validate(bundle, expect), foreignSANs(bundle, r.foreignOwner(c))...)
	action, reason := DecideBundle(findings)
	if action == BundleKeep && OwnerDrift(bundle, owner) {
		action, reason = BundleFixPerms, certs.ReasonBadPermissions
	}
	var issued *certs.IssueInfo
	switch action {
	case BundleIssue:
		opts := r.Issue
		opts.Now = now
		b, info, err := r.Authority.IssueBundle(identity, opts)
		if err != nil {
			return Result{}, fmt.Errorf("issuing bundle for %s: %w", service, err)
		}
		if info.Clamped {
			log.Warn("leaf lifetime clamped to the CA's expiry", keyNotAfter, info.NotAfter)
		}
		if _, err := r.Volume.WriteBundle(service, b, owner); err != nil {
			return Result{}, fmt.Errorf("writing bundle of %s: %w", service, err)
		}
		issued = &info
		if r.Metrics != nil {
			r.Metrics.BundleIssued(string(reason))
		}
		log.Info(fmt.Sprintf("%s: issued bundle (reason: %s) sans=[%s]", service, reason, strings.Join(identity.DNSNames, ", ")),
			keyAction, string(action), keyReason, string(reason), keySANs, identity.DNSNames,
			keyServerSer, info.ServerSerial, keyClientSer, info.ClientSerial, keyNotAfter, info.NotAfter)
	case BundleWriteCA:
		if _, err := r.Volume.WriteCA(service, r.Authority.TrustBundle(), owner); err != nil {
			return Result{}, fmt.Errorf("writing trust bundle of %s: %w", service, err)
		}
		log.Info(fmt.Sprintf("%s: refreshed trust bundle (reason: %s)", service, reason), keyAction, string(action), keyReason, string(reason))
	case BundleFixPerms:
		if err := r.Volume.FixPermissions(service, owner); err != nil {
			return Result{}, fmt.Errorf("fixing permissions of %s: %w", service, err)
		}
		log.Info(fmt.Sprintf("%s: fixed key permissions (reason: %s)", service, reason), keyAction, string(action), keyReason, string(reason))
	}
	if action != BundleKeep {
		// Level-triggered: record what is on disk now, not what we meant
		// to write, and what validation says of it now.
		if bundle, err = r.Volume.ReadBundle(service); err != nil {
			return Result{}, fmt.Errorf("re-reading bundle of %s: %w", service, err)
		}
		findings = certs.Validate(bundle, expect)
	}
	rec, err := r.noteIdentity(c, service, keyOwner, idFindings, log)
	if err != nil {
		return Result{}, err
	}
	return r.record(ctx, c, service, rec, bundle, issued, reason, findings, now, log)
}

// record stores what this reconcile learned, probes and remediates when a
// prober is configured, and schedules the next look: the renewal, the next
// periodic probe or a pending remediation step, whichever comes first.
func (r *ContainerReconciler) record(ctx context.Context, c dockerwatch.Container, service string, rec state.Record, b *certs.BundleFiles,
	issued *certs.IssueInfo, reason certs.Reason, findings []certs.Finding, now time.Time, log *slog.Logger) (Result, error) {
	parsed, err := certs.ParseBundle(b)
	if err != nil {
		return Result{}, fmt.Errorf("parsing bundle of %s just validated: %w", service, err)
	}
	rec.ContainerID, rec.ContainerName, rec.Service, rec.Project = c.ID, c.Name, service, c.Project
	rec.DNSNames = c.DNSNames()
	// Validation reasons of the bundle as it is now (after any repair).
	rec.Findings = nil
	for _, f := range findings {
		rec.Findings = append(rec.Findings, string(f.Reason))
	}
	newGeneration := rec.Bundle.Generation != b.Generation // e.g. renewed by a replica
	rec.Bundle.Generation = b.Generation
	rec.Bundle.WrittenAt = b.WrittenAt
	rec.Bundle.ServerSerial = certs.SerialString(parsed.ServerCert.SerialNumber)
	rec.Bundle.ClientSerial = certs.SerialString(parsed.ClientCert.SerialNumber)
	rec.Bundle.NotAfter = earlier(parsed.ServerCert.NotAfter, parsed.ClientCert.NotAfter)
	if r.Metrics != nil {
		r.Metrics.Expiry(service, "server", parsed.ServerCert.NotAfter)
		r.Metrics.Expiry(service, "client", parsed.ClientCert.NotAfter)
	}
	if issued != nil {
		rec.Bundle.IssuedReason = string(reason)
		rec.Bundle.IssuedAt = now
		rec.AddEvent(state.Event{At: now, Action: "issue", Result: "ok", Reason: string(reason)})
	}
	// A process that reloaded its certificates on a signal after the
	// bundle was written is as good as one started after it.
	started := c
	if rec.Remediation.ReloadedAt.After(started.StartedAt) {
		started.StartedAt = rec.Remediation.ReloadedAt
	}
	stale, why := StaleProcess(started, b.WrittenAt)
	if stale && !rec.NeedsRestart {
		log.Warn(fmt.Sprintf("%s: running with certificates older than its bundle; restart needed", service), keyReason, why)
	}
	rec.NeedsRestart, rec.NeedsRestartReason = stale, why

	frac := r.renewFraction()
	lifetime := parsed.ServerCert.NotAfter.Sub(parsed.ServerCert.NotBefore)
	next := NextRenewal(certs.RenewAt(parsed.ServerCert, frac), certs.RenewAt(parsed.ClientCert, frac), r.jitter(lifetime))
	if issued != nil || newGeneration || rec.Bundle.RenewAt.IsZero() {
		// Fixed per bundle generation, so status and metrics show one
		// stable time; a new bundle also re-arms the expiry warnings.
		rec.Bundle.RenewAt = next
		rec.Bundle.ExpiryWarned = 0
	}
	next = rec.Bundle.RenewAt
	if r.Metrics != nil {
		r.Metrics.Renewal(service, rec.Bundle.IssuedAt, rec.Bundle.RenewAt)
	}
	r.warnExpiry(service, &rec, now, log)
	if r.Prober != nil {
		at, gone, err := r.observe(ctx, c, service, parsed, stale, &rec, now, log)
		if err != nil {
			return Result{}, err
		}
		if gone {
			// Relabelled: the old container no longer exists; its
			// replacement is reconciled under its own ID.
			return Result{}, r.Records.Delete(c.ID)
		}
		if !at.IsZero() && at.Before(next) {
			next = at
		}
	}
	if err := r.Records.Put(rec); err != nil {
		return Result{}, fmt.Errorf("saving state of %s: %w", c.Name, err)
	}
	after := max(next.Sub(now), minRequeue)
	log.Debug("container reconciled", keyGeneration, b.Generation, keyRequeue, after)
	return Result{RequeueAfter: after}, nil
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

// warnExpiry logs a WARN once per --expiry-warn threshold that the bundle's
// earliest leaf expiry has crossed while its renewal is overdue. A leaf
// renews at 2/3 of its life, often inside the largest threshold (30 days of
// a 90-day leaf): only a renewal that did not happen is news. Thresholds are
// sorted largest first. A process serving an older leaf than the bundle's is
// the ladder's business (served-cert-not-current, the served expiry gauge).
func (r *ContainerReconciler) warnExpiry(service string, rec *state.Record, now time.Time, log *slog.Logger) {
	if rec.Bundle.RenewAt.IsZero() || !now.After(rec.Bundle.RenewAt.Add(time.Minute)) {
		return
	}
	left := rec.Bundle.NotAfter.Sub(now)
	for _, th := range r.ExpiryWarn {
		if left > th || (rec.Bundle.ExpiryWarned != 0 && rec.Bundle.ExpiryWarned <= th) {
			continue
		}
		log.Warn(fmt.Sprintf("%s: certificates expire in %s (at %s) and have not been renewed", service,
			left.Round(time.Second), rec.Bundle.NotAfter.UTC().Format(time.RFC3339)),
			keyNotAfter, rec.Bundle.NotAfter, keyRenewAt, rec.Bundle.RenewAt)
		rec.Bundle.ExpiryWarned = th
	}
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
	if r.Metrics != nil {
		r.Metrics.Forget(rec.Service, rec.ContainerName)
	}
	log.Info(fmt.Sprintf("%s: container gone or no longer managed; record removed, bundle kept", rec.Service), keyService, rec.Service)
	return nil
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

func newReconcileID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
