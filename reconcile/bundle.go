package reconcile

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// gatherBundle reads what the bundle decision needs: the key owner, the
// identity with its SANs, the bundle on disk and its validation.
func (r *ContainerReconciler) gatherBundle(p *pass) error {
	owner, ownerGap, err := OwnerFor(p.c)
	if err != nil {
		return Terminal(err)
	}
	if ownerGap != "" {
		p.log.Warn("bundle ownership", keyReason, ownerGap)
	}
	if p.records, err = r.Records.ListService(p.service); err != nil {
		return fmt.Errorf("listing the records of %s: %w", p.service, err)
	}
	identity := IdentityFor(p.c, p.service, r.TrustDomain, replicaNames(p.records, p.service, p.c.ID))
	var dropped []IdentityFinding
	identity.DNSNames, dropped = DropForeignNames(identity.DNSNames, p.service, r.foreignOwner(p.c))
	p.idFindings = append(p.idFindings, dropped...)
	if p.bundle, err = r.readBundle(p.service); err != nil {
		return err
	}
	p.owner, p.keyOwner = owner, ownerString(owner)
	if who, conflict := ownerConflict(p.records, p.service, p.c.ID, p.keyOwner); conflict {
		p.idFindings = append(p.idFindings, IdentityFinding{Reason: OwnerConflict, Message: fmt.Sprintf(
			"replicas of %s need different key owners (this one %s, %s); the keys keep the owner they have", p.service, p.keyOwner, who)})
		p.owner = ownerOnDisk(p.bundle, owner)
	}
	p.expect = certs.Expectation{Identity: identity, Authority: r.Authority, RenewFraction: r.renewFraction(),
		KeyMode: keyMode(p.owner), Now: p.now}
	p.findings = append(r.validator.Validate(p.bundle, p.expect), foreignSANs(p.bundle, r.foreignOwner(p.c))...)
	return nil
}

// measureArrival records, for a new container's first bundle, how long
// after its create event the bundle was durable. Event times are the
// engine's wall clock, so durable is too, not the injected clock.
func (r *ContainerReconciler) measureArrival(p *pass, durable time.Time) {
	if r.Arrivals == nil {
		return
	}
	a, ok := r.Arrivals.TakeCreated(p.c.ID)
	if !ok {
		return
	}
	p.fromEvent, p.fromReceipt = durable.Sub(a.EventAt), durable.Sub(a.ReceivedAt)
	if r.Metrics != nil {
		r.Metrics.BundleLatency(p.fromEvent, p.fromReceipt)
	}
}

func unsafeOf(b *certs.BundleFiles) []certs.UnsafeFile {
	if b == nil {
		return nil
	}
	return b.Unsafe
}

// readBundle reads service's bundle; an absent one is nil, not an error.
func (r *ContainerReconciler) readBundle(service string) (*certs.BundleFiles, error) {
	b, err := r.Volume.ReadBundle(service)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading bundle of %s: %w", service, err)
	}
	return b, nil
}

// ensureBundle decides what the bundle needs and does it, then reads back
// what is on disk now: level-triggered, the record says what is there, not
// what was meant to be written.
func (r *ContainerReconciler) ensureBundle(p *pass) error {
	p.action, p.reason = DecideBundle(p.findings, unsafeOf(p.bundle))
	if p.action == BundleKeep && OwnerDrift(p.bundle, p.owner) {
		p.action, p.reason = BundleFixPerms, certs.ReasonBadPermissions
	}
	if p.action == BundleKeep {
		return nil
	}
	err := r.repairBundle(p)
	if errors.Is(err, certs.ErrUnsafeFile) && p.action != BundleIssue {
		// Planted after the read: a whole new generation replaces it.
		p.action, p.reason = BundleIssue, certs.ReasonUnsafeFile
		err = r.repairBundle(p)
	}
	if err != nil {
		return err
	}
	b, err := r.Volume.ReadBundle(p.service)
	if err != nil {
		return fmt.Errorf("re-reading bundle of %s: %w", p.service, err)
	}
	p.bundle, p.findings = b, r.validator.Validate(b, p.expect)
	return nil
}

// repairBundle carries out p.action on the volume and logs it.
func (r *ContainerReconciler) repairBundle(p *pass) error {
	what := ""
	switch p.action {
	case BundleIssue:
		return r.issue(p)
	case BundleWriteCA:
		if _, err := r.Volume.WriteCA(p.service, r.Authority.TrustBundle(), p.owner); err != nil {
			return fmt.Errorf("writing trust bundle of %s: %w", p.service, err)
		}
		what = "refreshed trust bundle"
	case BundleFixPerms:
		if err := r.Volume.FixPermissions(p.service, p.owner); err != nil {
			return fmt.Errorf("fixing permissions of %s: %w", p.service, err)
		}
		what = "fixed key permissions"
	case BundleRelink:
		if _, err := r.Volume.Relink(p.service, p.bundle, p.owner); err != nil {
			return fmt.Errorf("relinking bundle of %s: %w", p.service, err)
		}
		what = "rewrote the same certificates and keys into fresh files, breaking hard links made to them"
	}
	p.log.Info(fmt.Sprintf("%s: %s (reason: %s)", p.service, what, p.reason), keyAction, string(p.action), keyReason, string(p.reason))
	return nil
}

// issue writes a new server and client pair for p's identity.
func (r *ContainerReconciler) issue(p *pass) error {
	opts := r.Issue
	opts.Now = p.now
	id := p.expect.Identity
	b, info, err := r.Authority.IssueBundle(id, opts)
	if err != nil {
		return fmt.Errorf("issuing bundle for %s: %w", p.service, err)
	}
	if info.Clamped {
		p.log.Warn("leaf lifetime clamped to the CA's expiry", keyNotAfter, info.NotAfter)
	}
	if _, err := r.Volume.WriteBundle(p.service, b, p.owner); err != nil {
		return fmt.Errorf("writing bundle of %s: %w", p.service, err)
	}
	r.measureArrival(p, time.Now())
	p.issued = &info
	if r.Metrics != nil {
		r.Metrics.BundleIssued(string(p.reason))
	}
	p.log.Info(fmt.Sprintf("%s: issued bundle (reason: %s) sans=[%s]", p.service, p.reason, strings.Join(id.DNSNames, ", ")),
		keyAction, string(p.action), keyReason, string(p.reason), keySANs, id.DNSNames,
		keyServerSer, info.ServerSerial, keyClientSer, info.ClientSerial, keyNotAfter, info.NotAfter)
	return nil
}
