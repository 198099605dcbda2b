package swarm

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// rig is a Reconciler over a fake engine, a real CA and a real state store
// in temp dirs, and a fake prober, with a clock the test moves.
type rig struct {
	r      *Reconciler
	engine *fakeEngine
	prober *fakeProber
	store  *state.Store
	now    time.Time
}

func newRig(t *testing.T, svcs ...dockerwatch.Service) *rig {
	t.Helper()
	authority, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	store, err := state.Open(t.TempDir(), state.Options{Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	g := &rig{engine: newFakeEngine(svcs...), prober: &fakeProber{level: probe.MTLS}, store: store, now: t0}
	g.r = &Reconciler{
		Engine: g.engine, Authority: authority, Store: store, Prober: g.prober,
		Scope: Scope{Stack: "demo"}, Reserved: map[string]string{"crank-mtls-controller": "the controller"},
		Root: "/certs", Networks: []string{"app"}, Domain: "crank.local", Renew: 0.5, Interval: 30 * time.Second,
		Issue:  certs.IssueOptions{Lifetime: 2 * time.Hour},
		Levels: reconcile.Policy{Environment: reconcile.Development, Mode: reconcile.Enforce, RestartBudget: 3, BackoffBase: time.Second, BackoffMax: time.Minute},
		Log:    slog.New(slog.DiscardHandler), Clock: func() time.Time { return g.now },
		Jitter: func(time.Duration) time.Duration { return 0 },
	}
	return g
}

// settledRig is a rig whose web service mounts generation 1 on both
// tasks, started at t0, and has been probed once.
func settledRig(t *testing.T) *rig {
	t.Helper()
	g := newRig(t, service())
	g.reconcile(t, "svc-web")
	g.engine.converge("svc-web", t0)
	g.reconcile(t, "svc-web")
	return g
}

func (g *rig) reconcile(t *testing.T, id string) reconcile.Result {
	t.Helper()
	res, err := g.r.Reconcile(context.Background(), id)
	if err != nil {
		t.Fatalf("reconcile %s: %v", id, err)
	}
	return res
}

func TestReconcileIssuesAGenerationAndRollsItOut(t *testing.T) {
	t.Parallel()
	g := newRig(t, service())
	g.reconcile(t, "svc-web")

	if n := g.engine.secretCount(); n != 5 {
		t.Fatalf("got %d secrets, want the 5 files of generation 1", n)
	}
	for id, s := range g.engine.secrets {
		if !strings.HasPrefix(s.Name, "crank-web-") || !strings.HasSuffix(s.Name, "-1") || s.Labels[LabelOwner] != "swarm:demo_web" {
			t.Errorf("got secret %s %q %v, want crank-web-<file>-1 owned by swarm:demo_web", id, s.Name, s.Labels)
		}
	}
	for _, c := range g.engine.configs {
		if strings.Contains(string(c.Data), "PRIVATE KEY") {
			t.Errorf("got a private key in manifest %s", c.Name)
		}
	}
	if len(g.engine.updates) != 1 || !g.engine.updates[0].SetSecrets {
		t.Fatalf("got updates %+v, want one rollout", g.engine.updates)
	}
	ch := g.engine.updates[0]
	if ch.UpdateOrder != dockerwatch.UpdateStartFirst || ch.FailureAction != "rollback" || len(ch.Secrets) != 5 || ch.Secrets[0].Target != "/certs/web/tls.crt" {
		t.Errorf("got change %+v, want 5 references under /certs/web, start-first, rollback", ch)
	}
}

func TestReconcileProbesTasksAndRecordsThem(t *testing.T) {
	t.Parallel()
	g := newRig(t, service())
	g.reconcile(t, "svc-web")
	g.now = t0.Add(time.Minute)
	g.engine.converge("svc-web", g.now.Add(-30*time.Second))
	g.reconcile(t, "svc-web")

	if len(g.engine.updates) != 1 {
		t.Errorf("got %d updates, want none after the first rollout", len(g.engine.updates))
	}
	if len(g.prober.probed) != 2 || g.prober.probed[0].Service != "web" || g.prober.probed[0].HTTPSPort != 8443 || g.prober.probed[0].ExpectedFingerprint == "" {
		t.Fatalf("got probes %+v, want both tasks probed as web on 8443 against generation 1", g.prober.probed)
	}
	recs, err := g.store.ListService("web")
	if err != nil || len(recs) != 2 {
		t.Fatalf("got %d records (%v), want one per task", len(recs), err)
	}
	rec := recs[0]
	if rec.ObservedLevel != "mtls" || rec.Bundle.Generation != "generation-1" || rec.NeedsRestart || rec.Project != "demo" {
		t.Errorf("got record %+v, want mtls at generation 1 in project demo", rec)
	}
	st := g.r.Statuses()
	if len(st) != 1 || st[0].Observed != "mtls" || st[0].Mounted != 1 || len(st[0].Tasks) != 2 || st[0].Tasks[0].NodeID != "node1" {
		t.Errorf("got status %+v, want web at mtls with two tasks on node1", st)
	}
}

func TestReconcileRenewsAndRemovesTheOldGeneration(t *testing.T) {
	t.Parallel()
	g := newRig(t, service())
	g.reconcile(t, "svc-web")
	g.engine.converge("svc-web", t0)
	g.now = t0.Add(90 * time.Minute) // past 0.5 of the 2 h lifetime
	g.reconcile(t, "svc-web")
	if len(g.engine.updates) != 2 || g.engine.secretCount() != 10 {
		t.Fatalf("got %d updates and %d secrets, want a second rollout and two generations", len(g.engine.updates), g.engine.secretCount())
	}
	g.engine.converge("svc-web", g.now)
	g.reconcile(t, "svc-web")
	if n := g.engine.secretCount(); n != 5 {
		t.Errorf("got %d secrets once generation 2 is mounted everywhere, want 5 (generation 1 removed)", n)
	}
}

// A rolling update replaces a task by asking it to stop; until its process
// exits, it still calls and serves peers with the bundle it started with,
// so the CA rollover must keep waiting for it.
func TestReconcileKeepsAStoppingTaskUntilItsProcessExits(t *testing.T) {
	t.Parallel()
	g := settledRig(t)
	g.now = t0.Add(90 * time.Minute) // renewal: generation 2 is rolled out
	g.reconcile(t, "svc-web")
	replaced := g.engine.tasks["svc-web"]
	for i := range replaced {
		replaced[i].DesiredState = dockerwatch.TaskShutdown
	}
	g.engine.converge("svc-web", g.now)
	g.engine.tasks["svc-web"] = append(g.engine.tasks["svc-web"], replaced...)
	probed := len(g.prober.probed)
	g.reconcile(t, "svc-web")

	if recs, _ := g.store.ListService("web"); len(recs) != 4 {
		t.Fatalf("got %d records while the replaced tasks stop, want 4 (2 new, 2 stopping)", len(recs))
	}
	c, err := g.r.Inspect(context.Background(), replaced[0].ID)
	if err != nil || c.State != dockerwatch.StateRunning || !c.StartedAt.IsZero() {
		t.Errorf("got %+v (%v) for a stopping task, want a running process older than the newest bundle", c, err)
	}
	if n := len(g.prober.probed) - probed; n != 2 {
		t.Errorf("got %d probes, want 2: only the tasks meant to run are probed", n)
	}

	g.engine.tasks["svc-web"] = g.engine.tasks["svc-web"][:2]
	for _, task := range replaced {
		task.State = dockerwatch.TaskShutdown
		g.engine.tasks["svc-web"] = append(g.engine.tasks["svc-web"], task)
	}
	g.reconcile(t, "svc-web")
	if recs, _ := g.store.ListService("web"); len(recs) != 2 {
		t.Errorf("got %d records once the replaced tasks exited, want 2", len(recs))
	}
	if _, err := g.r.Inspect(context.Background(), replaced[0].ID); !errors.Is(err, dockerwatch.ErrNotFound) {
		t.Errorf("got %v for an exited task, want not found", err)
	}
}

func TestReconcileRefusesASecondClaimant(t *testing.T) {
	t.Parallel()
	impostor := service(func(s *dockerwatch.Service) {
		s.ID, s.Name = "svc-imp", "demo_impostor"
		s.Labels = map[string]string{dockerwatch.LabelStackNamespace: "demo", reconcile.LabelService: "web"}
	})
	g := newRig(t, service(), impostor)
	g.reconcile(t, "svc-web")
	g.engine.tasks["svc-imp"] = []dockerwatch.Task{{ID: "imp-1", ServiceID: "svc-imp", Slot: 1, State: "running", DesiredState: "running"}}
	g.reconcile(t, "svc-imp")

	if n := len(g.engine.updates); n != 1 {
		t.Errorf("got %d updates, want only the owner's rollout", n)
	}
	rec, ok, err := g.store.Get("imp-1")
	if err != nil || !ok || !rec.Identity.Refused || rec.Identity.Findings[0].Reason != string(reconcile.IdentityConflict) {
		t.Errorf("got record %+v (%v, %v), want a refused identity-conflict", rec, ok, err)
	}
}

func TestReconcileForgetsARemovedService(t *testing.T) {
	t.Parallel()
	g := settledRig(t)
	delete(g.engine.services, "svc-web")
	g.reconcile(t, "svc-web")

	if n := g.engine.secretCount(); n != 0 {
		t.Errorf("got %d secrets after the service went, want 0", n)
	}
	if recs, _ := g.store.ListService("web"); len(recs) != 0 {
		t.Errorf("got %d records after the service went, want 0", len(recs))
	}
}

func TestReconcileForcesAnUpdateOnDrift(t *testing.T) {
	t.Parallel()
	g := newRig(t, service())
	g.reconcile(t, "svc-web")
	g.engine.converge("svc-web", t0)
	g.prober.level = probe.Plain
	g.now = t0.Add(time.Minute)
	g.reconcile(t, "svc-web")

	if len(g.engine.updates) != 2 || !g.engine.updates[1].ForceUpdate {
		t.Fatalf("got updates %+v, want a forced update after the rollout", g.engine.updates)
	}
	var st ServiceState
	if _, err := g.store.GetMeta(stateKey("demo_web"), &st); err != nil || st.Attempts != 1 || st.LastAction != UpdateRestart {
		t.Errorf("got state %+v (%v), want one restart attempt", st, err)
	}
}

func TestSweepRemovesWhatAServiceGoneWhileDownLeft(t *testing.T) {
	t.Parallel()
	g := settledRig(t)
	// The service goes while the controller is down: a new process knows
	// nothing of it, only the secrets and the records remain.
	delete(g.engine.services, "svc-web")
	fresh := &Reconciler{Engine: g.r.Engine, Authority: g.r.Authority, Store: g.r.Store, Scope: g.r.Scope, Clock: g.r.Clock}
	s := &Sweeper{Reconciler: fresh, Records: g.store, Log: slog.New(slog.DiscardHandler)}
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := g.engine.secretCount(); n != 0 {
		t.Errorf("got %d secrets, want 0", n)
	}
	if recs, _ := g.store.List(); len(recs) != 0 {
		t.Errorf("got %d records, want 0", len(recs))
	}
}

func TestSweepKeepsWhatAServiceInUseHolds(t *testing.T) {
	t.Parallel()
	g := newRig(t, service())
	g.reconcile(t, "svc-web")
	s := &Sweeper{Reconciler: g.r, Records: g.store, Log: slog.New(slog.DiscardHandler)}
	if err := s.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := g.engine.secretCount(); n != 5 {
		t.Errorf("got %d secrets, want the 5 of the live service's generation", n)
	}
}
