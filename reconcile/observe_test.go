package reconcile

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// fakeProber returns a fixed level, with the served fingerprint supplied
// by the test (the bundle's, or another).
type fakeProber struct {
	mu     sync.Mutex
	result func(t probe.Target) probe.Result
	calls  int
}

func (p *fakeProber) Probe(_ context.Context, t probe.Target) probe.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	return p.result(t)
}

// fakeActions records actions; onRestart runs inside Restart so a test can
// look at the world at the moment of the action.
type fakeActions struct {
	mu         sync.Mutex
	restarts   int
	signals    int
	recreates  int
	recreateFn func() (string, error)
	onRestart  func()
}

func (a *fakeActions) Restart(context.Context, string, time.Duration) error {
	a.mu.Lock()
	a.restarts++
	fn := a.onRestart
	a.mu.Unlock()
	if fn != nil {
		fn()
	}
	return nil
}

func (a *fakeActions) Signal(context.Context, string, string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.signals++
	return nil
}

func (a *fakeActions) Recreate(context.Context, string, map[string]string, []string, time.Duration) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.recreates++
	if a.recreateFn != nil {
		return a.recreateFn()
	}
	return "", errors.New("recreate: not expected")
}

func withProbing(f *fixture, env Environment, level probe.Level, actions *fakeActions, findings ...probe.Reason) *fakeProber {
	p := &fakeProber{result: func(t probe.Target) probe.Result {
		r := probe.Result{Level: level, ServedFingerprint: t.ExpectedFingerprint}
		for _, reason := range findings {
			r.Findings = append(r.Findings, probe.Finding{Reason: reason})
		}
		return r
	}}
	f.r.Prober, f.r.Actions = p, actions
	f.r.Levels = Policy{Environment: env, Mode: Enforce, ProductionMinimum: probe.MTLS, RestartBudget: 2,
		BackoffBase: 10 * time.Second, BackoffMax: time.Minute, StartGrace: 5 * time.Second}
	return p
}

// runFor reconciles id repeatedly, following RequeueAfter on the fake clock,
// for the given span of simulated time. It returns how many reconciles ran.
func (f *fixture) runFor(t *testing.T, id string, span time.Duration) int {
	t.Helper()
	end := f.now.Add(span)
	n := 0
	for f.now.Before(end) {
		res, err := f.reconcile(t, id)
		if err != nil {
			t.Fatalf("reconcile %d: %v", n, err)
		}
		n++
		step := res.RequeueAfter
		if step <= 0 {
			step = time.Second
		}
		f.now = f.now.Add(step)
	}
	return n
}

// addRunning registers a container that has run for an hour with an
// address and an HTTPS port, so the ladder may act on it; opts adjust it
// (labels) before it is registered.
func (f *fixture) addRunning(opts ...containerOpt) dockerwatch.Container {
	c := newContainer(withRunningSince(f.now.Add(-time.Hour)))
	c.Networks = map[string]dockerwatch.Network{"crank_default": {IPAddress: "10.0.0.2"}}
	c.Env = map[string]string{"SERVICE_HTTPS_PORT": "8443"}
	for _, o := range opts {
		o(&c)
	}
	f.docker.byID[c.ID] = c
	return c
}

func TestLadderNeverExceedsTheBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addRunning()
	actions := &fakeActions{}
	withProbing(f, Production, probe.TLS, actions, probe.ClientAuthNotEnforced)
	// Restarts do not change StartedAt in this fake, as if the process came
	// back at once; the budget alone must stop the ladder.
	reconciles := f.runFor(t, c.ID, 2*time.Hour)
	if actions.restarts != 2 {
		t.Errorf("got %d restarts over 2h (%d reconciles), want exactly the budget 2", actions.restarts, reconciles)
	}
	if reconciles > 2*3600/25 {
		t.Errorf("got %d reconciles in 2h, want no hot loop (about one per probe interval)", reconciles)
	}
	rec, _, _ := f.records.Get(c.ID)
	if rec.Remediation.Degraded == "" {
		t.Errorf("got no degraded reason after the budget, want one")
	}
}

func TestLadderTriesAFailedRelabelOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addRunning(withLabel(LabelOnDrift, "relabel"), withLabel(LabelRestartBudget, "0"))
	actions := &fakeActions{recreateFn: func() (string, error) { return "", errors.New("create failed; rolled back") }}
	withProbing(f, Production, probe.TLS, actions, probe.ClientAuthNotEnforced)
	f.runFor(t, c.ID, 2*time.Hour)
	if actions.recreates != 1 {
		t.Errorf("got %d recreate attempts over 2h, want 1: a rolled-back relabel is not retried", actions.recreates)
	}
}

func TestLadderNeverRestartsAContainerStoppedDuringTheProbe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addRunning()
	actions := &fakeActions{}
	p := withProbing(f, Production, probe.Down, actions)
	p.result = func(probe.Target) probe.Result {
		// The user stops the container while it is being probed.
		f.docker.mu.Lock()
		stopped := f.docker.byID[c.ID]
		stopped.State = dockerwatch.StateExited
		f.docker.byID[c.ID] = stopped
		f.docker.mu.Unlock()
		return probe.Result{Level: probe.Down}
	}
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	if actions.restarts != 0 {
		t.Errorf("got %d restarts, want 0: a container stopped by the user stays stopped", actions.restarts)
	}
}

func TestLadderSavesTheBudgetBeforeActing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addRunning()
	actions := &fakeActions{}
	withProbing(f, Production, probe.TLS, actions, probe.ClientAuthNotEnforced)
	var attemptsAtRestart int
	actions.onRestart = func() {
		rec, _, _ := f.records.Get(c.ID)
		attemptsAtRestart = rec.Remediation.Attempts
	}
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	if actions.restarts != 1 || attemptsAtRestart != 1 {
		t.Errorf("got %d restarts with %d attempts stored at the time, want 1 and 1 (stored before acting)", actions.restarts, attemptsAtRestart)
	}
}

func TestLadderSignalReloadEndsTheEpisode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Bundle write times come from the filesystem's clock: run the fake
	// clock from the real time, so the signal is recorded after the write
	// exactly as in production (no head start hiding an early timestamp).
	f.now = time.Now()
	c := f.addRunning(withLabel(LabelReload, "signal:SIGHUP"))
	actions := &fakeActions{}
	// mtls throughout: the process only needs to pick up its new bundle,
	// which was written after it started (StaleProcess).
	withProbing(f, Production, probe.MTLS, actions)
	f.runFor(t, c.ID, time.Hour)
	if actions.signals != 1 || actions.restarts != 0 {
		t.Errorf("got %d signals and %d restarts, want one signal: after it the process is current", actions.signals, actions.restarts)
	}
	rec, _, _ := f.records.Get(c.ID)
	if rec.NeedsRestart || rec.Remediation.Degraded != "" || rec.Remediation.Attempts != 0 {
		t.Errorf("got needs_restart=%v degraded=%q attempts=%d, want a closed episode", rec.NeedsRestart, rec.Remediation.Degraded, rec.Remediation.Attempts)
	}
}

func TestReconcileChownsKeysWhenTheUserChanges(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("chown needs root; skipped when the tests do not run as root")
	}
	c := newContainer()
	f := newFixture(t, c)
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	c.User = "1000:1000" // the image was rebuilt with USER 1000
	f.docker.byID[c.ID] = c
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(f.certs, "email-parser", "tls.key"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("got tls.key owned by %d:%d, want 1000:1000", st.Uid, st.Gid)
	}
}

// A service labelled reload=watch reloads by itself: after a renewal the
// controller probes until it serves the new bundle, and restarts it only
// when it does not within the reload grace.
func TestLadderWaitsForAServiceThatReloadsByItself(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// reloads says whether the service starts serving the new bundle.
		reloads bool
		// wantRestart: whether the ladder restarts it within ten minutes.
		wantRestart bool
	}{
		"should not restart a service that shows its new bundle":      {reloads: true},
		"should restart one that does not, once the grace has passed": {reloads: false, wantRestart: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			// The volume stamps generations with real time; the grace
			// counts from there.
			f.now = time.Now()
			c := f.addRunning(withLabel(LabelReload, ReloadWatch))
			actions := &fakeActions{}
			p := withProbing(f, Production, probe.MTLS, actions)
			f.r.Levels.ReloadGrace = 30 * time.Second
			mustReconcile(t, f, c.ID)
			oldFP := ""
			p.result = func(tg probe.Target) probe.Result {
				if oldFP == "" {
					oldFP = tg.ExpectedFingerprint
				}
				served := oldFP
				if tc.reloads {
					served = tg.ExpectedFingerprint
				}
				r := probe.Result{Level: probe.MTLS, ServedFingerprint: served}
				if served != tg.ExpectedFingerprint {
					r.Findings = []probe.Finding{{Reason: probe.ServedCertNotCurrent}}
				}
				return r
			}
			f.now = f.now.Add(20 * time.Second) // past half a probe interval: probed again
			mustReconcile(t, f, c.ID)           // learns the fingerprint served now
			// The bundle is renewed while the process runs (the volume stamps
			// real time, after the container's start).
			if err := os.RemoveAll(filepath.Join(f.certs, "email-parser")); err != nil {
				t.Fatal(err)
			}
			renewedAt := time.Now()
			var firstRestart time.Time
			actions.onRestart = func() {
				if firstRestart.IsZero() {
					firstRestart = f.now
				}
			}
			f.runFor(t, c.ID, 10*time.Minute)
			if (actions.restarts > 0) != tc.wantRestart {
				t.Errorf("restarts: got %d, want restarted %v", actions.restarts, tc.wantRestart)
			}
			if grace := renewedAt.Add(30 * time.Second); tc.wantRestart && firstRestart.Before(grace) {
				t.Errorf("first restart at %v, want no earlier than the end of the reload grace %v", firstRestart, grace)
			}
			rec, _, _ := f.records.Get(c.ID)
			if tc.reloads && (rec.NeedsRestart || rec.Remediation.ReloadedAt.IsZero()) {
				t.Errorf("record: got NeedsRestart=%v ReloadedAt=%v, want the reload recorded", rec.NeedsRestart, rec.Remediation.ReloadedAt)
			}
		})
	}
}

// A reconcile stopped while probing (the controller shutting down) still
// records the bundle it issued before the probe, so a restart finds the
// record, not a bundle nobody remembers issuing.
func TestAStopDuringTheProbeKeepsTheIssuance(t *testing.T) {
	t.Parallel()
	c := newContainer(withRunningSince(time.Date(2026, 11, 29, 11, 0, 0, 0, time.UTC)))
	f := newFixture(t, c)
	withProbing(f, Development, probe.MTLS, &fakeActions{})
	ctx, stop := context.WithCancel(t.Context())
	f.r.Prober.(*fakeProber).result = func(probe.Target) probe.Result {
		stop() // the shutdown lands mid-probe
		return probe.Result{Level: probe.Down}
	}
	if _, err := f.r.Reconcile(ctx, c.ID); !errors.Is(err, context.Canceled) {
		t.Fatalf("got error %v, want context.Canceled", err)
	}
	rec, ok, err := f.records.Get(c.ID)
	if err != nil || !ok {
		t.Fatalf("got no record (%v), want the issuance recorded", err)
	}
	if rec.Bundle.IssuedReason != "missing" || rec.Bundle.ServerSerial == "" || !rec.Level.LastProbeAt.IsZero() {
		t.Errorf("got bundle %+v and last probe %v, want the issuance and no observation", rec.Bundle, rec.Level.LastProbeAt)
	}
}
