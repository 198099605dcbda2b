package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// CreationGrace is how long an incomplete generation is left alone: one
// younger than that may be one a pass is creating right now.
const CreationGrace = 2 * time.Minute

// GCInputs is what Removable needs for one identity.
type GCInputs struct {
	Gens []Generation
	// Referenced are the secret IDs something may still mount: the
	// service's references, and its previous spec's while an update that
	// the engine might roll back is not completed.
	Referenced map[string]bool
	// Gone: no service holds the identity any more, so even its newest
	// generation goes.
	Gone bool
	Now  time.Time
}

// Removable returns the generations that can be removed: those no
// reference mounts, except the newest complete one while the identity has
// a service (it is about to be mounted, or is), and except an incomplete
// one younger than CreationGrace. Pure; see gc_test.go.
func Removable(in GCInputs) []Generation {
	latest := Latest(in.Gens)
	var out []Generation
	for _, g := range in.Gens {
		switch {
		case referenced(g, in.Referenced):
		case latest != nil && g.N == latest.N && !in.Gone:
		case !g.Complete() && in.Now.Sub(createdAt(g)) < CreationGrace:
		default:
			out = append(out, g)
		}
	}
	return out
}

func referenced(g Generation, refs map[string]bool) bool {
	for _, s := range g.Secrets {
		if refs[s.ID] {
			return true
		}
	}
	return false
}

// createdAt is when the newest object of g was created.
func createdAt(g Generation) time.Time {
	var t time.Time
	for _, s := range g.Secrets {
		if s.CreatedAt.After(t) {
			t = s.CreatedAt
		}
	}
	if g.Manifest != nil && g.Manifest.CreatedAt.After(t) {
		t = g.Manifest.CreatedAt
	}
	return t
}

// ReferencedBy collects the secret IDs svc and its tasks may mount.
func ReferencedBy(svc dockerwatch.Service, tasks []dockerwatch.Task) map[string]bool {
	refs := map[string]bool{}
	add := func(rs []dockerwatch.SecretRef) {
		for _, r := range rs {
			refs[r.SecretID] = true
		}
	}
	add(svc.Secrets)
	if svc.UpdateState != "" && svc.UpdateState != "completed" {
		add(svc.PreviousSecrets)
	}
	for _, t := range tasks {
		if t.Live() {
			add(t.Secrets)
		}
	}
	return refs
}

// collect removes the pass's identity's generations that nothing mounts.
func (r *Reconciler) collect(ctx context.Context, p *pass) error {
	rm := Removable(GCInputs{Gens: p.gens, Referenced: ReferencedBy(p.svc, p.tasks), Now: p.now})
	return r.remove(ctx, rm, p.log)
}

// collectGone removes every generation of identity that no service
// references, once no service holds the identity.
func (r *Reconciler) collectGone(ctx context.Context, identity string) error {
	svcs, err := r.Engine.Services(ctx)
	if err != nil {
		return err
	}
	refs := map[string]bool{}
	for _, s := range svcs {
		if id, ok := r.holds(s); ok && id == identity {
			return nil // held again (e.g. deployed anew under the same name)
		}
		for k := range ReferencedBy(s, nil) {
			refs[k] = true
		}
	}
	label := LabelIdentity + "=" + identity
	secrets, err := r.Engine.Secrets(ctx, label)
	if err != nil {
		return err
	}
	configs, err := r.Engine.Configs(ctx, label)
	if err != nil {
		return err
	}
	gens := Generations(identity, secrets, configs)
	return r.remove(ctx, Removable(GCInputs{Gens: gens, Referenced: refs, Gone: true, Now: r.now()}), r.logger(ctx))
}

// remove deletes generations, the manifest first: a generation without
// one is incomplete, so a removal cut short is finished later.
func (r *Reconciler) remove(ctx context.Context, gens []Generation, log *slog.Logger) error {
	var errs []error
	for _, g := range gens {
		if g.Manifest != nil {
			if err := r.Engine.RemoveConfig(ctx, g.Manifest.ConfigID); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		for _, s := range g.Secrets {
			errs = append(errs, r.Engine.RemoveSecret(ctx, s.ID))
		}
		log.Info(fmt.Sprintf("%s: removed bundle generation %d: no service mounts it", g.Identity, g.N),
			keyIdentity, g.Identity, keyGeneration, g.N)
	}
	return errors.Join(errs...)
}

// holds returns the identity a service the controller manages holds.
func (r *Reconciler) holds(svc dockerwatch.Service) (string, bool) {
	if reason, _ := r.Scope.Managed(svc); !reason.Managed() {
		return "", false
	}
	id, err := IdentityName(svc)
	return id, err == nil
}
