package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// IdentityStore is the state's memory of who owns each identity.
type IdentityStore interface {
	// ClaimIdentity records o as name's owner if it has none and returns
	// the owner on record after the call.
	ClaimIdentity(name string, o state.IdentityOwner) (state.IdentityOwner, error)
	IdentityOwnerOf(name string) (state.IdentityOwner, bool, error)
}

// claim asks the store for identity name on behalf of c. It returns a
// finding and false when c may not hold it.
func (r *ContainerReconciler) claim(c dockerwatch.Container, name string) (IdentityFinding, bool, error) {
	claimant := ClaimantOf(c)
	what := r.Reserved[name]
	if name == "localhost" {
		what = "every container (it names the loopback address)"
	}
	if what != "" {
		f, ok := JudgeClaim(name, claimant, state.IdentityOwner{}, what)
		return f, ok, nil
	}
	if r.Identities == nil {
		return IdentityFinding{}, false, fmt.Errorf("claiming identity %s: no identity store configured", name)
	}
	// Almost every claim is by the owner, again: a read answers it, and
	// only a first claim needs a write (and its fsync).
	owner, found, err := r.Identities.IdentityOwnerOf(name)
	if err == nil && !found {
		owner, err = r.Identities.ClaimIdentity(name, claimant)
	}
	if err != nil {
		return IdentityFinding{}, false, err
	}
	f, ok := JudgeClaim(name, claimant, owner, "")
	return f, ok, nil
}

// foreignOwner reports whether name is an identity that c's owner does not
// hold, and whose it is, for DropForeignNames. A store error counts as
// foreign: a name that cannot be checked is not put in a certificate.
func (r *ContainerReconciler) foreignOwner(c dockerwatch.Container) func(string) (string, bool) {
	claimant := ClaimantOf(c)
	return func(name string) (string, bool) {
		if what := r.Reserved[name]; what != "" {
			return what, true
		}
		if r.Identities == nil {
			return "", false
		}
		o, found, err := r.Identities.IdentityOwnerOf(name)
		if err != nil {
			return "an owner the state could not be read for", true
		}
		if !found || o.Key == claimant.Key {
			return "", false
		}
		return Describe(o), true
	}
}

// refuse records c as a claimant that holds no identity, so status,
// metrics and logs report it, and schedules a look at the next probe
// interval (an operator may release the identity meanwhile).
func (r *ContainerReconciler) refuse(c dockerwatch.Container, service string, findings []IdentityFinding, log *slog.Logger) (Result, error) {
	rec, _, err := r.Records.Get(c.ID)
	if err != nil {
		return Result{}, fmt.Errorf("reading state of %s: %w", c.Name, err)
	}
	first := !rec.Identity.Refused || !sameFindings(rec.Identity.Findings, findings)
	rec = state.Record{ContainerID: c.ID, ContainerName: c.Name, Service: service, Project: c.Project,
		Identity: state.IdentityRecord{Refused: true, Findings: toStateFindings(findings)},
		History:  rec.History, Transitions: rec.Transitions}
	if err := r.Records.Put(rec); err != nil {
		return Result{}, fmt.Errorf("saving state of %s: %w", c.Name, err)
	}
	r.reportIdentity(service, c.Name, findings, first, log)
	return Result{RequeueAfter: r.probeInterval()}, nil
}

// reportIdentity logs each finding when it is new (ERROR in production
// for a conflict, WARN otherwise) and hands the codes to the metrics.
func (r *ContainerReconciler) reportIdentity(service, container string, findings []IdentityFinding, changed bool, log *slog.Logger) {
	if r.Metrics != nil {
		r.Metrics.IdentityFindings(service, container, reasonsOf(findings))
	}
	if !changed {
		return
	}
	for _, f := range findings {
		level := slog.LevelWarn
		if f.Reason == IdentityConflict && r.Levels.Environment == Production {
			level = slog.LevelError
		}
		log.Log(context.Background(), level, fmt.Sprintf("%s: %s: %s", service, f.Reason, f.Message), keyReason, string(f.Reason))
	}
}

// ownerConflict reports whether another recorded replica of service needs
// a different key owner than want. Replicas refused an identity don't count.
func ownerConflict(records []state.Record, service, selfID, want string) (string, bool) {
	for _, rec := range records {
		if rec.Service != service || rec.ContainerID == selfID || rec.Identity.Refused {
			continue
		}
		if rec.Identity.KeyOwner != "" && want != "" && rec.Identity.KeyOwner != want {
			return rec.ContainerName + " needs " + rec.Identity.KeyOwner, true
		}
	}
	return "", false
}

// ownerString is the "uid:gid" form of o, "" when o leaves ownership alone.
func ownerString(o certs.Owner) string {
	if o.UID < 0 {
		return ""
	}
	return strconv.Itoa(o.UID) + ":" + strconv.Itoa(o.GID)
}

func toStateFindings(fs []IdentityFinding) []state.Finding {
	out := make([]state.Finding, len(fs))
	for i, f := range fs {
		out[i] = state.Finding{Reason: string(f.Reason), Message: f.Message}
	}
	return out
}

func reasonsOf(fs []IdentityFinding) []IdentityReason {
	out := make([]IdentityReason, len(fs))
	for i, f := range fs {
		out[i] = f.Reason
	}
	return out
}

func sameFindings(old []state.Finding, now []IdentityFinding) bool {
	return slices.Equal(old, toStateFindings(now))
}

// noteIdentity sets the identity part of p's record: it holds an
// identity, needs its key owner, and has findings (logged when they
// change).
func (r *ContainerReconciler) noteIdentity(p *pass) {
	changed := !sameFindings(p.rec.Identity.Findings, p.idFindings)
	p.rec.Identity = state.IdentityRecord{Findings: toStateFindings(p.idFindings), KeyOwner: p.keyOwner}
	r.reportIdentity(p.service, p.c.Name, p.idFindings, changed, p.log)
}

// ownerOnDisk is the owner the bundle's keys have now, so a conflict keeps
// it; without a bundle, fallback is used.
func ownerOnDisk(b *certs.BundleFiles, fallback certs.Owner) certs.Owner {
	if b == nil || b.Generation == "" || b.ServerKeyUID < 0 {
		return fallback
	}
	return certs.Owner{UID: b.ServerKeyUID, GID: b.ServerKeyGID, GroupRead: fallback.GroupRead}
}

// foreignSANs returns a san-mismatch finding when the bundle's server
// certificate covers a name that is another identity's, as one issued
// before that identity was claimed can: it must be reissued without it.
func foreignSANs(b *certs.BundleFiles, foreign func(string) (string, bool)) []certs.Finding {
	if b == nil || len(b.ServerCert) == 0 {
		return nil
	}
	leaves, err := certs.ParseCertificatesPEM(b.ServerCert)
	if err != nil || len(leaves) == 0 {
		return nil // certs.Validate reports it
	}
	for _, n := range leaves[0].DNSNames {
		if owner, ok := foreign(n); ok {
			return []certs.Finding{{Reason: certs.ReasonSANMismatch, File: "tls.crt", Message: fmt.Sprintf(
				"covers %s, which belongs to %s", n, owner)}}
		}
	}
	return nil
}
