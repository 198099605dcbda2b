package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// Store is the state store as the rotator uses it: the rollover's meta
// and the per-container records (read-only).
type Store interface {
	GetMeta(key string, v any) (bool, error)
	PutMeta(key string, v any) error
	List() ([]state.Record, error)
}

// BundleReader reads a service's bundle from the shared volume.
type BundleReader interface {
	ReadBundle(service string) (*certs.BundleFiles, error)
}

// ContainerGetter is the one Docker read the rotator needs: whether a
// recorded container still exists, runs, and since when.
type ContainerGetter interface {
	Inspect(ctx context.Context, id string) (dockerwatch.Container, error)
}

// DefaultInterval is how often the Rotator looks.
const DefaultInterval = 5 * time.Second

// Rotator drives CA rollovers (see the package doc). It is level-triggered:
// each Step re-reads the CA files, the meta, the records, the bundles and
// Docker, decides with Decide, and takes at most one CA step.
type Rotator struct {
	Authority  *certs.Authority
	Store      Store
	Volume     BundleReader
	Containers ContainerGetter
	// Prober receives the controller's client certificate: from the
	// successor during the overlap, from the active CA otherwise. The
	// Rotator owns it, renewal included. Nil: no prober (and no proof of
	// the overlap; only the timeout ends it).
	Prober CredentialSetter
	// ProberIdentity is the identity of that certificate.
	ProberIdentity certs.Identity
	// Issue is the template for the prober's certificate; Now is set per
	// issue.
	Issue certs.IssueOptions
	// Enqueue, if set, asks the reconciler to look at a container now; it
	// is called for every recorded container after each CA step, so trust
	// bundles are rewritten without waiting for the next periodic probe.
	Enqueue func(id string)
	// StateDir holds RequestFile and StatusFile.
	StateDir string
	// Fraction of the active CA's lifetime after which it rolls over by
	// itself (default DefaultFraction).
	Fraction float64
	// Timeout of a phase waiting for services (default DefaultTimeout).
	Timeout time.Duration
	// Interval between steps (default DefaultInterval).
	Interval time.Duration
	// ExpiryWarn are the thresholds before the CA's expiry at which a WARN
	// is logged, once per CA and threshold (default DefaultExpiryWarn).
	ExpiryWarn []time.Duration
	// StallAfter is how long a service may block a phase, plus its turn in
	// the global action limit (ActionInterval per waited-for service),
	// before a WARN (an ERROR when Production) names it and what it lacks.
	// Default DefaultStallAfter; the controller passes a few probe
	// intervals.
	StallAfter time.Duration
	// ActionInterval is the reconciler's global action spacing.
	ActionInterval time.Duration
	// Production raises stalls from WARN to ERROR.
	Production bool
	// Metrics, if set, receives the stalled gauge.
	Metrics Metrics
	Log     *slog.Logger
	// Clock is a seam for tests; nil means time.Now.
	Clock func() time.Time

	mu       sync.Mutex
	loaded   bool
	meta     Meta
	status   Status
	creds    proberCreds
	warnings expiryWarnings
	lastErr  string
	notes    notes // used by Step only
	// lastImport is the outcome of the last import request, for Status.
	lastImport *ImportStatus
}

// Start runs Step every Interval until ctx ends. A failing step is logged
// and retried on the next tick; Start returns nil when ctx ends.
func (r *Rotator) Start(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		err := r.Step(ctx)
		if ctx.Err() != nil {
			return nil
		}
		r.noteStepError(err)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// noteStepError logs a failing step once per distinct error, so a Docker
// outage does not print a line every few seconds.
func (r *Rotator) noteStepError(err error) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	r.mu.Lock()
	changed := msg != r.lastErr
	r.lastErr = msg
	r.mu.Unlock()
	switch {
	case err != nil && changed:
		r.logger().Error("CA rollover step failed; retrying every interval", keyError, err)
	case err == nil && changed:
		r.logger().Info("CA rollover steps work again")
	}
}

// Status returns the rollover's current status, for the status API.
func (r *Rotator) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.WaitingFor = slices.Clone(s.WaitingFor)
	s.Blockers, s.Skipped = slices.Clone(s.Blockers), slices.Clone(s.Skipped)
	return s
}

// Step looks once and takes at most one CA step. It is safe to call
// concurrently with Status, not with itself.
func (r *Rotator) Step(ctx context.Context) error {
	now := r.now()
	meta, err := r.loadMeta()
	if err != nil {
		return err
	}
	facts := caFacts(r.Authority)
	if meta, err = r.reconcileFiles(meta, facts, now); err != nil {
		return err
	}
	r.warnExpiry(meta, facts, now)
	if !now.After(facts.ActiveNotAfter) { // an expired CA issues nothing; Decide recovers it first
		if err := r.ensureCredentials(meta.Phase, now); err != nil {
			return err
		}
	}
	rq, err := r.readRequests(meta, now)
	if err != nil {
		return err
	}
	var members []Member
	// An expired CA is recovered whatever Docker says: gathering (which
	// inspects every container) must not stand in its way.
	if meta.Phase != PhaseIdle && !now.After(facts.ActiveNotAfter) {
		if members, err = r.gather(ctx, meta.Phase); err != nil {
			return err
		}
	}
	d := Decide(Inputs{Now: now, Meta: meta, CA: facts, Requested: rq.requested && rq.req.Import == "", ImportReady: rq.imported != nil,
		Fraction: r.Fraction, Timeout: r.Timeout, CredsSince: r.credsSince(meta.Phase), Members: members})
	if meta, facts, err = r.apply(meta, facts, &d, rq.imported, now); err != nil {
		return err
	}
	if err := r.saveMeta(meta); err != nil {
		return err
	}
	if err := r.consumeRequest(&rq, d, meta); err != nil {
		return err
	}
	r.publish(meta, facts, d, rq.requested, now)
	return nil
}

// createSuccessor starts a rollover to a CA the controller generates.
func (r *Rotator) createSuccessor(meta Meta, d Decision, now time.Time) (Meta, error) {
	a := r.Authority
	next, err := a.CreateSuccessor(now)
	if err != nil && !errors.Is(err, certs.ErrSuccessorExists) {
		return meta, fmt.Errorf("CA rollover: %w", err)
	}
	if next == nil {
		next = a.Successor()
	}
	fp := fingerprint(next.Cert)
	r.logger().Info(fmt.Sprintf("CA rollover: idle -> overlap (%s: %s): created successor CA %q; every trust bundle now holds the old and the new CA, services restart one at a time, and the prober presents a certificate of the new CA to prove each reloaded",
		d.Trigger, d.Reason, next.Cert.Subject.CommonName),
		keyPhase, string(PhaseOverlap), keyFrom, string(meta.Phase), keyTrigger, d.Trigger, keyCA, fp)
	return Meta{Phase: PhaseOverlap, Trigger: d.Trigger, StartedAt: now, PhaseSince: now, Successor: fp, LastTransitionAt: now}, nil
}

// adoptSuccessor starts a rollover to an operator's imported CA.
func (r *Rotator) adoptSuccessor(meta Meta, d Decision, imported *certs.CA, now time.Time) (Meta, error) {
	if err := r.Authority.AdoptSuccessor(imported); err != nil {
		return meta, fmt.Errorf("CA rollover: %w", err)
	}
	fp := fingerprint(imported.Cert)
	if err := certs.DropStagedImport(r.StateDir, fp); err != nil {
		return meta, fmt.Errorf("CA rollover: %w", err)
	}
	r.noteImport(ImportStatus{Fingerprint: fp, State: ImportAdopted, At: now, Message: "adopted as the successor"})
	r.logger().Info(fmt.Sprintf("CA rollover: idle -> overlap (%s: %s): adopted the imported CA %q (trust anchor %q) as the successor; every trust bundle now holds the old and the new anchor, services restart one at a time, and the prober presents a certificate of the new CA to prove each reloaded",
		d.Trigger, d.Reason, imported.Cert.Subject.CommonName, imported.Anchor().Subject.CommonName),
		keyPhase, string(PhaseOverlap), keyFrom, string(meta.Phase), keyTrigger, d.Trigger, keyCA, fp)
	return Meta{Phase: PhaseOverlap, Trigger: d.Trigger, StartedAt: now, PhaseSince: now, Successor: fp, LastTransitionAt: now}, nil
}

// requests are the rollover requests a step found in the state dir.
type requests struct {
	req       Request
	requested bool
	imported  *certs.CA // a staged import, checked and ready to adopt
}

// readRequests reads a pending rotate request and, when it names an
// import, checks the staged CA; an import refused or already in place
// consumes its request at once.
func (r *Rotator) readRequests(meta Meta, now time.Time) (requests, error) {
	var rq requests
	var err error
	if rq.req, rq.requested, err = readRequest(r.StateDir); err != nil || !rq.requested || rq.req.Import == "" {
		return rq, err
	}
	var done bool
	if rq.imported, done, err = r.importRequest(rq.req, meta.Phase, now); err != nil || !done {
		return rq, err
	}
	if err := removeRequest(r.StateDir); err != nil {
		return rq, err
	}
	rq.requested = false
	return rq, nil
}

// apply carries out d: progress is noted when nothing is to be done, else
// the phase changes and the CA facts are read again.
func (r *Rotator) apply(meta Meta, facts CAFacts, d *Decision, imported *certs.CA, now time.Time) (Meta, CAFacts, error) {
	if d.Action == ActionNone {
		meta, d.Progress = r.noteProgress(meta, d.Progress, now)
		r.report(meta, d.Progress, now)
		return meta, facts, nil
	}
	meta, err := r.take(meta, *d, imported, now)
	if err != nil {
		return meta, facts, err
	}
	d.Progress = Progress{} // of the phase just left
	return meta, caFacts(r.Authority), nil
}

// consumeRequest removes a rotate request once the rollover it asked for
// is durable (or one is already running), and only then.
func (r *Rotator) consumeRequest(rq *requests, d Decision, meta Meta) error {
	if !rq.requested || !consumes(rq.req, d.Action, meta.Phase) {
		return nil
	}
	if d.Action != ActionCreateSuccessor && d.Action != ActionAdoptSuccessor {
		r.logger().Info("CA rotate request consumed: a rollover is already in progress", keyPhase, string(meta.Phase))
	}
	if err := removeRequest(r.StateDir); err != nil {
		return err
	}
	rq.requested = false
	return nil
}

// take takes the CA step d asks for, and has the prober and the
// reconciler follow the new CA files at once instead of at their next look.
// imported is the checked CA that ActionAdoptSuccessor adopts.
func (r *Rotator) take(meta Meta, d Decision, imported *certs.CA, now time.Time) (Meta, error) {
	// A phase can end on its first look: what it did not wait for is
	// still said, once, before the next phase starts.
	r.report(meta, d.Progress, now)
	meta, err := r.act(meta, d, imported, now)
	if err != nil {
		return meta, err
	}
	r.report(meta, Progress{}, now)
	if err := r.ensureCredentials(meta.Phase, now); err != nil {
		return meta, err
	}
	r.enqueueAll()
	return meta, nil
}

// act takes the CA step d asks for and returns the meta of the new phase.
// The CA files change first, then the meta is saved: a crash in between
// leaves meta one step behind, which ReconcileMeta repairs from the files.
func (r *Rotator) act(meta Meta, d Decision, imported *certs.CA, now time.Time) (Meta, error) {
	a, log := r.Authority, r.logger()
	from := meta.Phase
	if d.TimedOut {
		log.Error(fmt.Sprintf("CA rollover: %s; proceeding anyway (%s) with services that have not caught up: %s",
			d.Reason, d.Action, d.Progress.Summary(phaseWhat(from))),
			keyPhase, string(from), keyLaggards, d.Progress.Waiting)
	}
	switch d.Action {
	case ActionRecoverExpired:
		if err := RecoverExpired(a, now, log); err != nil {
			return meta, err
		}
		next, _ := ReconcileMeta(Meta{Phase: PhaseIdle}, caFacts(a), now)
		next.Trigger, next.StartedAt, next.LastTransitionAt = TriggerExpired, now, now
		return next, nil
	case ActionCreateSuccessor:
		return r.createSuccessor(meta, d, now)
	case ActionAdoptSuccessor:
		return r.adoptSuccessor(meta, d, imported, now)
	case ActionPromote:
		if err := a.Promote(); err != nil {
			return meta, fmt.Errorf("CA rollover: %w", err)
		}
		fp := fingerprint(a.Active().Cert)
		log.Info(fmt.Sprintf("CA rollover: overlap -> reissue: promoted the new CA %q (%s); leaves are reissued from it and services restarted one at a time",
			a.Active().Cert.Subject.CommonName, d.Progress.Summary(phaseWhat(from))),
			keyPhase, string(PhaseReissue), keyFrom, string(from), keyCA, fp, keyDone, d.Progress.Done, keyTotal, d.Progress.Total)
		return Meta{Phase: PhaseReissue, Trigger: meta.Trigger, StartedAt: meta.StartedAt, PhaseSince: now, Successor: fp, LastTransitionAt: now}, nil
	case ActionRetire:
		if err := a.Retire(); err != nil {
			return meta, fmt.Errorf("CA rollover: %w", err)
		}
		log.Info(fmt.Sprintf("CA rollover: reissue -> idle: retired the old CA (%s); trust bundles shrink to the new CA, rewritten and reloaded one service at a time. Rollover started %s is complete",
			d.Progress.Summary(phaseWhat(from)), meta.StartedAt.UTC().Format(time.RFC3339)),
			keyPhase, string(PhaseIdle), keyFrom, string(from), keyDone, d.Progress.Done, keyTotal, d.Progress.Total)
		return Meta{Phase: PhaseIdle, Trigger: meta.Trigger, StartedAt: meta.StartedAt, LastTransitionAt: now}, nil
	}
	return meta, nil
}

// noteProgress marks the services that stalled the phase, logs the
// phase's progress when it changed, and returns meta carrying it.
func (r *Rotator) noteProgress(meta Meta, p Progress, now time.Time) (Meta, Progress) {
	if meta.Phase == PhaseIdle {
		return meta, p
	}
	p, meta.WaitingSince = markStalls(p, meta.WaitingSince, now, stallThreshold(r.StallAfter, r.ActionInterval, len(p.Waiting)))
	if meta.Done == p.Done && meta.Total == p.Total && slices.Equal(meta.Waiting, p.Waiting) {
		return meta, p
	}
	meta.Done, meta.Total, meta.Waiting = p.Done, p.Total, p.Waiting
	notWaited := make([]string, len(p.Skipped))
	for i, k := range p.Skipped {
		notWaited[i] = k.Container + ":" + string(k.Reason)
	}
	r.logger().Info("CA rollover: "+string(meta.Phase)+" "+p.Summary(phaseWhat(meta.Phase)),
		keyPhase, string(meta.Phase), keyDone, p.Done, keyTotal, p.Total, keyWaiting, p.Waiting, keyNotWaited, notWaited)
	return meta, p
}

// phaseWhat completes "4/6 services ..." for a phase.
func phaseWhat(p Phase) string {
	switch p {
	case PhaseOverlap:
		return "trust the new CA"
	case PhaseReissue:
		return "serve certificates of the new CA"
	}
	return "are done"
}

func (r *Rotator) loadMeta() (Meta, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.loaded {
		return r.meta, nil
	}
	var m Meta
	if _, err := r.Store.GetMeta(MetaKey, &m); err != nil {
		// The files say which CAs exist; only the phase start times are
		// lost, so the timeout starts over. Not a reason to stop.
		r.logger().Error("CA rollover meta does not decode; rebuilding it from the CA files", keyError, err)
		m = Meta{}
	}
	r.meta, r.loaded = m, true
	return m, nil
}

func (r *Rotator) saveMeta(m Meta) error {
	r.mu.Lock()
	same := r.loaded && metaEqual(r.meta, m)
	r.mu.Unlock()
	if same {
		return nil
	}
	if err := r.Store.PutMeta(MetaKey, m); err != nil {
		return fmt.Errorf("saving CA rollover meta: %w", err)
	}
	r.mu.Lock()
	r.meta = m
	r.mu.Unlock()
	return nil
}

func metaEqual(a, b Meta) bool {
	return a.Phase == b.Phase && a.Trigger == b.Trigger && a.StartedAt.Equal(b.StartedAt) && a.PhaseSince.Equal(b.PhaseSince) &&
		a.Successor == b.Successor && a.Done == b.Done && a.Total == b.Total && slices.Equal(a.Waiting, b.Waiting) &&
		a.LastTransitionAt.Equal(b.LastTransitionAt) && maps.EqualFunc(a.WaitingSince, b.WaitingSince, time.Time.Equal)
}

// reconcileFiles applies ReconcileMeta, logs what it changed and saves it.
func (r *Rotator) reconcileFiles(meta Meta, f CAFacts, now time.Time) (Meta, error) {
	next, note := ReconcileMeta(meta, f, now)
	if note == "" {
		return next, nil
	}
	r.logger().Warn(note, keyPhase, string(next.Phase), keyFrom, string(meta.Phase))
	if err := r.saveMeta(next); err != nil {
		return meta, err
	}
	return next, nil
}

func (r *Rotator) warnExpiry(meta Meta, f CAFacts, now time.Time) {
	if now.After(f.ActiveNotAfter) {
		return // expired: RecoverExpired logs that, louder
	}
	t, ok := r.warnings.due(f.ActiveFingerprint, f.ActiveNotAfter, now, r.thresholds())
	if !ok {
		return
	}
	hint := fmt.Sprintf("it rolls over by itself at %s, or run `controller ca rotate`", RotateAt(f.ActiveNotBefore, f.ActiveNotAfter, r.Fraction).UTC().Format(time.RFC3339))
	switch {
	case f.ActiveImported && meta.Phase == PhaseIdle:
		hint = "it was imported, so it does not roll over by itself: import its successor with `controller ca import` (if it expires, the controller recovers with a CA of its own)"
	case meta.Phase != PhaseIdle:
		hint = "a rollover is in progress (phase " + string(meta.Phase) + "); see `controller ca status`"
	}
	left := f.ActiveNotAfter.Sub(now).Round(time.Minute)
	r.logger().Warn(fmt.Sprintf("CA expires in %s (at %s), within the %s warning threshold; %s",
		left, f.ActiveNotAfter.UTC().Format(time.RFC3339), t, hint),
		keyCA, f.ActiveFingerprint, keyNotAfter, f.ActiveNotAfter, keyLeft, left.String())
}

func (r *Rotator) thresholds() []time.Duration {
	if len(r.ExpiryWarn) == 0 {
		return DefaultExpiryWarn
	}
	return r.ExpiryWarn
}

func (r *Rotator) enqueueAll() {
	if r.Enqueue == nil {
		return
	}
	recs, err := r.Store.List()
	if err != nil {
		r.logger().Warn("listing records to reconcile after a CA step; they follow at their next probe", keyError, err)
		return
	}
	for _, rec := range recs {
		r.Enqueue(rec.ContainerID)
	}
}

// publish updates Status and writes StatusFile for `controller ca status`.
func (r *Rotator) publish(meta Meta, f CAFacts, d Decision, requested bool, now time.Time) {
	a := r.Authority
	s := Status{
		Phase: meta.Phase, Since: meta.PhaseSince, Trigger: meta.Trigger, StartedAt: meta.StartedAt,
		Done: meta.Done, Total: meta.Total, WaitingFor: meta.Waiting,
		ActiveCA: caStatus(a.Active()), Retiring: f.Retiring,
		RequestPending: requested, CheckedAt: now.UTC(),
	}
	if !f.ActiveImported {
		s.RotateAt = RotateAt(f.ActiveNotBefore, f.ActiveNotAfter, r.Fraction).UTC()
	}
	if meta.Phase == PhaseIdle {
		s.Since = meta.LastTransitionAt
		s.Done, s.Total, s.WaitingFor = 0, 0, nil
	} else {
		s.Why, s.Blockers, s.Skipped = d.Progress.Why, d.Progress.Blockers, d.Progress.Skipped
		s.Message = d.Progress.Summary(phaseWhat(meta.Phase))
	}
	if next := a.Successor(); next != nil {
		cs := caStatus(next)
		s.Successor = &cs
	}
	r.mu.Lock()
	s.Import = r.lastImport
	r.status = s
	r.mu.Unlock()
	if r.StateDir == "" {
		return
	}
	if err := writeStatus(r.StateDir, s); err != nil {
		r.logger().Warn("writing the CA rollover status file; `controller ca status` shows an older state", keyError, err)
	}
}

func caFacts(a *certs.Authority) CAFacts {
	act := a.Active()
	f := CAFacts{ActiveFingerprint: fingerprint(act.Cert), ActiveNotBefore: act.Cert.NotBefore, ActiveNotAfter: act.NotAfter(),
		Retiring: len(a.Retiring()), ActiveImported: act.Imported}
	if next := a.Successor(); next != nil {
		f.SuccessorFingerprint = fingerprint(next.Cert)
	}
	return f
}

func (r *Rotator) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}

func (r *Rotator) now() time.Time {
	if r.Clock == nil {
		return time.Now()
	}
	return r.Clock()
}
