package reconcile

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// noteBundle reads the container's record and writes into it what is on
// disk now (after any repair): identity, serials, validation, whether the
// process is older than its bundle, and when the bundle renews. Nothing
// is persisted yet; schedule does that once the probe has been noted too.
func (r *ContainerReconciler) noteBundle(p *pass) error {
	var err error
	if p.server, p.client, err = certs.ParseLeaves(p.bundle); err != nil {
		return fmt.Errorf("parsing bundle of %s just validated: %w", p.service, err)
	}
	if p.stored, p.found, err = r.Records.Get(p.c.ID); err != nil {
		return fmt.Errorf("reading state of %s: %w", p.c.Name, err)
	}
	p.rec = p.stored
	r.noteIdentity(p)
	rec, c := &p.rec, p.c
	rec.ContainerID, rec.ContainerName, rec.Service, rec.Project = c.ID, c.Name, p.service, c.Project
	rec.DNSNames = c.DNSNames()
	rec.Findings = nil
	for _, f := range p.findings {
		rec.Findings = append(rec.Findings, string(f.Reason))
	}
	newLeaves := r.noteSerials(p)
	r.noteStale(p)
	r.noteRenewal(p, newLeaves)
	r.warnExpiry(p.service, rec, p.now, p.log)
	return nil
}

// noteSerials records the bundle's generation and leaves, and the
// issuance if this pass made one. It reports whether the leaves are new to
// this record (issued by this pass or by a replica's); a new generation of
// the same leaves (a CA refresh, a relink) is not.
func (r *ContainerReconciler) noteSerials(p *pass) bool {
	b, rec := p.bundle, &p.rec
	server, client := certs.SerialString(p.server.SerialNumber), certs.SerialString(p.client.SerialNumber)
	newLeaves := rec.Bundle.ServerSerial != server || rec.Bundle.ClientSerial != client
	rec.Bundle.Generation, rec.Bundle.WrittenAt = b.Generation, b.WrittenAt
	rec.Bundle.ServerSerial, rec.Bundle.ClientSerial = server, client
	rec.Bundle.NotAfter = earlier(p.server.NotAfter, p.client.NotAfter)
	if r.Metrics != nil {
		r.Metrics.Expiry(p.service, "server", p.server.NotAfter)
		r.Metrics.Expiry(p.service, "client", p.client.NotAfter)
	}
	if p.fromEvent != 0 {
		rec.Bundle.EventToBundle, rec.Bundle.ReceivedToBundle = p.fromEvent, p.fromReceipt
	}
	if p.issued != nil {
		rec.Bundle.IssuedReason, rec.Bundle.IssuedAt = string(p.reason), p.now
		rec.AddEvent(state.Event{At: p.now, Action: "issue", Result: string(ResultOK), Reason: string(p.reason)})
	}
	return newLeaves
}

// noteStale records whether the running process started before its
// bundle was written. A process that reloaded its certificates on a
// signal after the bundle was written is as good as one started after it.
func (r *ContainerReconciler) noteStale(p *pass) {
	started := p.c
	if p.rec.Remediation.ReloadedAt.After(started.StartedAt) {
		started.StartedAt = p.rec.Remediation.ReloadedAt
	}
	stale, why := StaleProcess(started, p.bundle.WrittenAt)
	switch {
	case !stale || p.rec.NeedsRestart:
	case strings.TrimSpace(p.c.Labels[LabelReload]) == ReloadWatch:
		p.log.Info(fmt.Sprintf("%s: new bundle written; waiting for the service to reload it by itself", p.service), keyReason, why)
	default:
		p.log.Warn(fmt.Sprintf("%s: running with certificates older than its bundle; restart needed", p.service), keyReason, why)
	}
	p.stale = stale
	p.rec.NeedsRestart, p.rec.NeedsRestartReason = stale, why
}

// noteRenewal fixes the renewal time once per pair of leaves, so
// status and metrics show one stable time; a new bundle also re-arms the
// expiry warnings.
func (r *ContainerReconciler) noteRenewal(p *pass, newLeaves bool) {
	s, c := p.server, p.client
	frac := r.renewFraction()
	if p.issued != nil || newLeaves || p.rec.Bundle.RenewAt.IsZero() {
		p.rec.Bundle.RenewAt = NextRenewal(certs.RenewAt(s, frac), certs.RenewAt(c, frac), r.jitter(s.NotAfter.Sub(s.NotBefore)))
		p.rec.Bundle.ExpiryWarned = 0
	}
	p.wake(p.rec.Bundle.RenewAt)
	if r.Metrics != nil {
		r.Metrics.Renewal(p.service, p.rec.Bundle.IssuedAt, p.rec.Bundle.RenewAt)
	}
}

// schedule persists the record and asks to be called again at the
// earliest of the renewal, the next probe and any pending ladder step.
func (r *ContainerReconciler) schedule(p *pass) (Result, error) {
	if err := r.save(p); err != nil {
		return Result{}, err
	}
	after := max(p.next.Sub(p.now), minRequeue)
	p.log.Debug("container reconciled", keyGeneration, p.bundle.Generation, keyRequeue, after)
	return Result{RequeueAfter: after}, nil
}

// save stores what the pass changed. A pass that changed nothing (a
// resync of a settled container) writes nothing, and one that only probed
// a settled container again notes the probe's time: every write is an
// fsync, and a thousand containers probed every 30 s cannot afford one
// each.
func (r *ContainerReconciler) save(p *pass) error {
	var err error
	switch {
	case p.found && sameRecord(p.stored, p.rec):
	case p.found && sameRecord(p.stored, probeTimesOf(p.rec, p.stored)):
		// A record deleted since it was read cannot be noted: it is written.
		if err = r.Records.Note(p.rec); err == nil {
			break
		}
		fallthrough
	default:
		err = r.Records.Put(p.rec)
	}
	if err != nil {
		return fmt.Errorf("saving state of %s: %w", p.c.Name, err)
	}
	return nil
}

// probeTimesOf is rec with from's probe time and duration: what rec would
// be had the probe that changed only those not run.
func probeTimesOf(rec, from state.Record) state.Record {
	rec.Level.LastProbeAt, rec.Level.ProbeDuration = from.Level.LastProbeAt, from.Level.ProbeDuration
	return rec
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

// sameRecord reports whether two records hold the same content, apart from
// UpdatedAt, which only Put sets. Records are compared as they are stored,
// in JSON, so times read back from the store compare equal to the same
// times in memory.
func sameRecord(a, b state.Record) bool {
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}
