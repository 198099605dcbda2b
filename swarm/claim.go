package swarm

import (
	"fmt"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// judgeIdentity applies the one-owner rule to the pass's service and works
// out the certificate identity it needs. The owner on record wins; a state
// rebuilt after the loss of the controller's node has none, and then the
// owner written on the identity's newest generation does, so that a loss
// of the node never hands an identity to a second claimant.
func (r *Reconciler) judgeIdentity(p *pass) error {
	name := p.identity
	if what := r.Reserved[name]; what != "" || name == "localhost" {
		if what == "" {
			what = "every container (it names the loopback address)"
		}
		f, _ := JudgeClaim(name, p.claimant, state.IdentityOwner{}, what)
		p.refused = &f
		return nil
	}
	owner, found, err := r.Store.IdentityOwnerOf(name)
	if err == nil && !found {
		owner, err = r.Store.ClaimIdentity(name, r.firstOwner(p))
	}
	if err != nil {
		return fmt.Errorf("claiming identity %s: %w", name, err)
	}
	if f, ok := JudgeClaim(name, p.claimant, owner, ""); !ok {
		p.refused = &f
		return nil
	}
	p.wanted, p.findings = WantedIdentity(p.svc, name, r.Domain, r.foreignOwner(p))
	return nil
}

// firstOwner is who claims an identity that has no owner on record: the
// owner its bundle secrets carry, else the pass's service.
func (r *Reconciler) firstOwner(p *pass) state.IdentityOwner {
	for i := len(p.gens) - 1; i >= 0; i-- {
		if m := p.gens[i].Manifest; m != nil && m.Owner != "" && m.Owner != p.claimant.Key {
			return state.IdentityOwner{Key: m.Owner}
		} else if m != nil && m.Owner != "" {
			break
		}
	}
	return p.claimant
}

// foreignOwner says whether a name is another owner's identity (or
// reserved), for DropForeignNames. A name whose owner cannot be read is
// treated as foreign: it is not put in a certificate.
func (r *Reconciler) foreignOwner(p *pass) func(string) (string, bool) {
	return func(name string) (string, bool) {
		if what := r.Reserved[name]; what != "" {
			return what, true
		}
		o, found, err := r.Store.IdentityOwnerOf(name)
		switch {
		case err != nil:
			return "an owner the state could not be read for", true
		case !found || o.Key == p.claimant.Key:
			return "", false
		}
		return describe(o), true
	}
}

// recordRefusal records every task of a service that claims an identity
// it may not hold: it gets no bundle, and status and logs say why.
func (r *Reconciler) recordRefusal(p *pass) error {
	f := *p.refused
	r.note(p.svc.ID, "refused", f.Message, func(msg string) {
		if r.Levels.Environment == reconcile.Production {
			p.log.Error(msg, keyReason, string(f.Reason))
			return
		}
		p.log.Warn(msg, keyReason, string(f.Reason))
	})
	for _, t := range p.tasks {
		if !t.Live() {
			continue
		}
		rec := state.Record{ContainerID: t.ID, ContainerName: taskName(p.svc, t), Service: p.identity, Project: p.svc.Stack, Node: t.NodeID,
			Identity: state.IdentityRecord{Refused: true, Findings: []state.Finding{{Reason: string(f.Reason), Message: f.Message}}}}
		if err := r.Store.Put(rec); err != nil {
			return fmt.Errorf("recording refused task %s: %w", rec.ContainerName, err)
		}
	}
	return r.dropRecords(p, liveIDs(p.tasks))
}

// liveIDs are the IDs of the tasks meant to run or still running.
func liveIDs(tasks []dockerwatch.Task) []string {
	var ids []string
	for _, t := range tasks {
		if t.Live() {
			ids = append(ids, t.ID)
		}
	}
	return ids
}
