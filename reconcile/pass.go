package reconcile

import (
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// pass is one reconcile of one container. Each step gathers into it or
// reads from it, so no step takes a list of positional values, and what
// one step learned is never gathered twice (cert-manager's policies.Input
// and our own rotation.Inputs have the same shape).
type pass struct {
	// Set by Reconcile.
	c          dockerwatch.Container // with image-supplied labels removed
	service    string                // the identity it holds
	log        *slog.Logger          // carries reconcile_id, container and service
	now        time.Time
	idFindings []IdentityFinding

	// Gathered by gatherBundle.
	records  []state.Record // the service's records: its replicas'
	owner    certs.Owner    // who must own the keys
	keyOwner string         // owner as "uid:gid", "" when unknown
	expect   certs.Expectation
	bundle   *certs.BundleFiles // as on disk; nil when absent
	findings []certs.Finding    // validation of bundle against expect

	// Decided and done by ensureBundle.
	action BundleAction
	reason certs.Reason     // the finding that drove action
	issued *certs.IssueInfo // set when a new pair was issued
	// fromEvent and fromReceipt: a new container's create event (as the
	// engine stamped it, and as received) to its first bundle on disk.
	fromEvent, fromReceipt time.Duration

	// Recorded by noteBundle, and persisted by schedule unless it equals
	// stored, the record as read (found: there was one).
	stored state.Record
	found  bool
	rec    state.Record
	// The bundle's leaves, parsed by noteBundle.
	server, client *x509.Certificate
	stale          bool      // the process started before its bundle was written
	next           time.Time // when to look again, the earliest of every step's wish
}

// step is one decision of the remediation ladder with what it was made of.
type step struct {
	desired Desired
	res     probe.Result
	plan    Plan
}

// wake asks for another look no later than at; a zero at is no wish.
func (p *pass) wake(at time.Time) {
	if !at.IsZero() && (p.next.IsZero() || at.Before(p.next)) {
		p.next = at
	}
}
