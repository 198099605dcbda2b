package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

var testPolicy = Policy{
	Environment: Production, Mode: Enforce, ProductionMinimum: probe.TLS, RestartBudget: 3,
	BackoffBase: 10 * time.Second, BackoffMax: time.Minute, StartGrace: 10 * time.Second, ReloadGrace: 30 * time.Second,
}

func TestDesiredFor(t *testing.T) {
	t.Parallel()
	dev := testPolicy
	dev.Environment = Development
	tests := map[string]struct {
		policy Policy
		c      dockerwatch.Container
		// want is the desired level, floor and response; wantErr a substring.
		want    Desired
		wantErr string
	}{
		"should default to mtls with the production floor at mtls": {
			policy: testPolicy, c: newContainer(),
			want: Desired{Level: probe.MTLS, Floor: probe.MTLS, OnDrift: OnDriftRestart, Budget: 3},
		},
		"should put the development floor at plain": {
			policy: dev, c: newContainer(),
			want: Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: OnDriftRestart, Budget: 3},
		},
		"should not let a label lower production below the global minimum": {
			policy: testPolicy, c: newContainer(withLabel(LabelLevel, "plain")),
			want: Desired{Level: probe.TLS, Floor: probe.TLS, OnDrift: OnDriftRestart, Budget: 3},
		},
		"should let a label lower the desired level in development": {
			policy: dev, c: newContainer(withLabel(LabelLevel, "tls")),
			want: Desired{Level: probe.TLS, Floor: probe.Plain, OnDrift: OnDriftRestart, Budget: 3},
		},
		"should read the reload signal, response and budget labels": {
			policy: dev,
			c: newContainer(withLabel(LabelReload, "signal:SIGHUP"), withLabel(LabelOnDrift, "relabel"),
				withLabel(LabelRestartBudget, "0")),
			want: Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: OnDriftRelabel, ReloadSignal: "SIGHUP"},
		},
		"should read a service that reloads by itself": {
			policy: dev, c: newContainer(withLabel(LabelReload, " watch ")),
			want: Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: OnDriftRestart, Budget: 3, ReloadWatch: true},
		},
		"should reject down as a desired level":  {policy: dev, c: newContainer(withLabel(LabelLevel, "down")), wantErr: "crank.security.level"},
		"should reject an unknown response":      {policy: dev, c: newContainer(withLabel(LabelOnDrift, "panic")), wantErr: "crank.security.on-drift"},
		"should reject a reload without signal:": {policy: dev, c: newContainer(withLabel(LabelReload, "SIGHUP")), wantErr: "signal:<NAME>"},
		"should reject a negative budget":        {policy: dev, c: newContainer(withLabel(LabelRestartBudget, "-1")), wantErr: "0-100"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := tc.policy.DesiredFor(tc.c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got (%+v, %v), want %+v", got, err, tc.want)
			}
		})
	}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	running := newContainer(withRunningSince(now.Add(-time.Hour)))
	mtls := probe.Result{Level: probe.MTLS}
	theater := probe.Result{Level: probe.TLS, Findings: []probe.Finding{{Reason: probe.ClientAuthNotEnforced}}}
	notCurrent := probe.Result{Level: probe.MTLS, Findings: []probe.Finding{{Reason: probe.ServedCertNotCurrent}}}
	mtlsWant := Desired{Level: probe.MTLS, Floor: probe.MTLS, OnDrift: OnDriftRestart, Budget: 3}
	with := func(d Desired, f func(*Desired)) Desired { f(&d); return d }
	observe := testPolicy
	observe.Mode = Observe

	tests := map[string]struct {
		policy  Policy
		desired Desired
		obs     Observation
		// wantAction is the chosen action; wantDegraded whether the ladder is
		// exhausted; wantRetry whether a later look is scheduled; wantReason a
		// substring of the explanation.
		wantAction   Action
		wantDegraded bool
		wantRetry    bool
		wantReason   string
		// wantCode is the plan's code, exactly.
		wantCode PlanCode
		// wantDrift, wantBelowFloor, wantDryRun, wantReset are the flags.
		wantDrift, wantBelowFloor, wantDryRun, wantReset bool
	}{
		"should do nothing at the desired level": {
			wantCode: PlanAtDesired,
			desired:  mtlsWant, obs: Observation{Container: running, Probe: mtls}, wantReason: "at desired level",
		},
		"should end the episode after a relabel too, so a later drift may relabel again": {
			wantCode: PlanAtDesired,
			desired:  mtlsWant, obs: Observation{Container: running, Probe: mtls, Relabels: 1, NextActionAt: now.Add(-time.Minute)}, wantReset: true,
		},
		"should end the episode when a drifted container is back at its level": {
			wantCode: PlanAtDesired,
			desired:  mtlsWant, obs: Observation{Container: running, Probe: mtls, Attempts: 2}, wantReset: true,
		},
		"should restart theater in production": {
			wantCode: PlanRemediate,
			desired:  mtlsWant, obs: Observation{Container: running, Probe: theater},
			wantAction: ActionRestart, wantDrift: true, wantBelowFloor: true, wantReason: "client-auth-not-enforced",
		},
		"should send the declared signal instead of restarting": {
			wantCode:   PlanRemediate,
			desired:    with(mtlsWant, func(d *Desired) { d.ReloadSignal = "SIGHUP" }),
			obs:        Observation{Container: running, Probe: mtls, StaleProcess: true},
			wantAction: ActionSignal, wantReason: "bundle newer than the process",
		},
		"should restart a process serving a certificate that is not current": {
			wantCode: PlanRemediate,
			desired:  mtlsWant, obs: Observation{Container: running, Probe: notCurrent},
			wantAction: ActionRestart, wantReason: "served-cert-not-current",
		},
		"should wait out the backoff": {
			wantCode:  PlanBackoff,
			desired:   mtlsWant,
			obs:       Observation{Container: running, Probe: theater, Attempts: 1, NextActionAt: now.Add(time.Second)},
			wantRetry: true, wantDrift: true, wantBelowFloor: true, wantReason: "backoff",
		},
		"should report degraded when the budget is spent": {
			wantCode: PlanBudgetSpent,
			desired:  mtlsWant, obs: Observation{Container: running, Probe: theater, Attempts: 3},
			wantDegraded: true, wantDrift: true, wantBelowFloor: true, wantReason: "budget (3) spent",
		},
		"should relabel when the budget is spent and on-drift is relabel": {
			wantCode:   PlanRelabel,
			desired:    with(mtlsWant, func(d *Desired) { d.OnDrift = OnDriftRelabel }),
			obs:        Observation{Container: running, Probe: theater, Attempts: 3},
			wantAction: ActionRelabel, wantDrift: true, wantBelowFloor: true,
		},
		"should not relabel twice for the same drift": {
			wantCode: PlanAlreadyRelabelled,
			desired:  with(mtlsWant, func(d *Desired) { d.OnDrift = OnDriftRelabel; d.Budget = 0 }),
			obs: Observation{Container: newContainer(withRunningSince(now.Add(-time.Hour)),
				withLabel(LabelObserved, "tls"), withLabel(LabelDrift, "client-auth-not-enforced")), Probe: theater},
			wantDegraded: true, wantDrift: true, wantBelowFloor: true, wantReason: "already relabelled",
		},
		"should never relabel a replacement again, even when it needs a reload": {
			wantCode: PlanBudgetSpent,
			desired:  with(mtlsWant, func(d *Desired) { d.OnDrift = OnDriftRelabel; d.Budget = 0 }),
			obs: Observation{Container: newContainer(withRunningSince(now.Add(-time.Hour)),
				withLabel(LabelObserved, "plain"), withLabel(LabelDrift, "untrusted-server-cert")),
				Probe: probe.Result{Level: probe.Plain, Findings: []probe.Finding{{Reason: probe.UntrustedServerCert}, {Reason: probe.ServedCertNotCurrent}}}},
			wantDegraded: true, wantDrift: true, wantBelowFloor: true, wantReason: "budget (0) spent",
		},
		"should not retry a relabel that failed and rolled back": {
			wantCode:     PlanRelabelRolledBack,
			desired:      with(mtlsWant, func(d *Desired) { d.OnDrift = OnDriftRelabel }),
			obs:          Observation{Container: running, Probe: theater, Attempts: 3, Relabels: 1},
			wantDegraded: true, wantDrift: true, wantBelowFloor: true, wantReason: "relabel already tried",
		},
		"should wait out the backoff before relabelling": {
			wantCode:  PlanRelabelBackoff,
			desired:   with(mtlsWant, func(d *Desired) { d.OnDrift = OnDriftRelabel }),
			obs:       Observation{Container: running, Probe: theater, Attempts: 3, NextActionAt: now.Add(time.Minute)},
			wantRetry: true, wantDrift: true, wantBelowFloor: true, wantReason: "before relabelling",
		},
		"should only report with on-drift report": {
			wantCode:     PlanReportOnly,
			desired:      with(mtlsWant, func(d *Desired) { d.OnDrift = OnDriftReport }),
			obs:          Observation{Container: running, Probe: theater},
			wantDegraded: true, wantDrift: true, wantBelowFloor: true, wantReason: "report",
		},
		"should never touch a container the user stopped": {
			wantCode: PlanNotRunning,
			desired:  mtlsWant,
			obs: Observation{Container: func() dockerwatch.Container {
				c := newContainer()
				c.State = dockerwatch.StateExited
				return c
			}(), Probe: probe.Result{Level: probe.Down}},
			wantDrift: true, wantBelowFloor: true, wantReason: "never started by the controller",
		},
		"should not act on a restarting container": {
			wantCode: PlanRestarting,
			desired:  mtlsWant,
			obs: Observation{Container: func() dockerwatch.Container {
				c := newContainer()
				c.State = dockerwatch.StateRestarting
				return c
			}(), Probe: probe.Result{Level: probe.Down}},
			wantDrift: true, wantBelowFloor: true, wantReason: "restarting",
		},
		"should wait for the start grace before acting": {
			wantCode: PlanStartGrace,
			desired:  mtlsWant, obs: Observation{Container: newContainer(withRunningSince(now.Add(-time.Second))), Probe: probe.Result{Level: probe.Down}},
			wantRetry: true, wantDrift: true, wantBelowFloor: true, wantReason: "start grace",
		},
		"should accept plain in development as drift above the floor": {
			wantCode:   PlanRemediate,
			desired:    Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: OnDriftRestart, Budget: 3},
			obs:        Observation{Container: running, Probe: probe.Result{Level: probe.Plain}},
			wantAction: ActionRestart, wantDrift: true,
		},
		"should wait for a reload=watch service to show its new bundle": {
			desired:   with(mtlsWant, func(d *Desired) { d.ReloadWatch = true }),
			obs:       Observation{Container: running, Probe: notCurrent, StaleProcess: true, BundleWrittenAt: now.Add(-10 * time.Second)},
			wantRetry: true, wantCode: PlanAwaitingReload, wantReason: "reload=watch",
		},
		"should restart a reload=watch service that did not reload within the grace": {
			desired:    with(mtlsWant, func(d *Desired) { d.ReloadWatch = true }),
			obs:        Observation{Container: running, Probe: notCurrent, StaleProcess: true, BundleWrittenAt: now.Add(-time.Minute)},
			wantAction: ActionRestart, wantCode: PlanRemediate,
		},
		"should plan but not act in observe mode": {
			wantCode: PlanRemediate,
			policy:   observe, desired: mtlsWant, obs: Observation{Container: running, Probe: theater},
			wantAction: ActionRestart, wantDryRun: true, wantDrift: true, wantBelowFloor: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := tc.policy
			if p.Environment == "" {
				p = testPolicy
			}
			o := tc.obs
			o.Now = now
			got := p.Decide(tc.desired, o)
			if got.Action != tc.wantAction || (got.Degraded != "") != tc.wantDegraded || got.RetryAt.IsZero() == tc.wantRetry ||
				got.Drift != tc.wantDrift || got.BelowFloor != tc.wantBelowFloor || got.DryRun != tc.wantDryRun || got.ResetBudget != tc.wantReset {
				t.Errorf("got %+v, want action %q degraded %v retry %v drift %v belowFloor %v dryRun %v reset %v",
					got, tc.wantAction, tc.wantDegraded, tc.wantRetry, tc.wantDrift, tc.wantBelowFloor, tc.wantDryRun, tc.wantReset)
			}
			if got.Code != tc.wantCode {
				t.Errorf("got code %q, want %q", got.Code, tc.wantCode)
			}
			if !strings.Contains(got.Message, tc.wantReason) {
				t.Errorf("got message %q, want it to contain %q", got.Message, tc.wantReason)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, time.Minute, time.Minute}
	for i, w := range want {
		if got := testPolicy.Backoff(i + 1); got != w {
			t.Errorf("got Backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
}

// A reload that a CA rollover phase waits for is its own budget: one per
// container and phase, whatever the drift episode has spent.
func TestDecidePhaseReload(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	running := newContainer(withRunningSince(now.Add(-time.Hour)))
	plainOnly := probe.Result{Level: probe.Plain}
	theater := probe.Result{Level: probe.TLS, Findings: []probe.Finding{{Reason: probe.ClientAuthNotEnforced}}}
	refuses := probe.Result{Level: probe.Plain, Findings: []probe.Finding{{Reason: probe.ClientCertRejected}}}
	mtlsWant := Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: OnDriftRestart, Budget: 3}
	waits := RolloverNeed{Phase: "overlap:bb", Waits: true}
	notWaited := RolloverNeed{Phase: "overlap:bb", NotWaited: "serves-plain", Message: "serves plain"}
	observe := testPolicy
	observe.Mode = Observe

	tests := map[string]struct {
		policy  Policy
		desired Desired
		obs     Observation
		// wantAction is the chosen action; wantPhaseReload the rollover code;
		// wantPhase the phase a reload is spent on; wantDegraded whether
		// the ladder reports it given up; wantDryRun whether it is only logged.
		wantAction      Action
		wantPhaseReload PhaseReload
		wantPhase       string
		wantDegraded    bool
		wantDryRun      bool
	}{
		"should reload a stale process the phase waits for even when its drift budget is spent": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: refuses, StaleProcess: true, Attempts: 3, Rollover: waits},
			wantAction: ActionRestart, wantPhaseReload: PhaseReloadNow, wantPhase: "overlap:bb",
		},
		"should reload on the phase's budget, not the drift budget, when budget is left": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: probe.Result{Level: probe.MTLS}, StaleProcess: true, Rollover: waits},
			wantAction: ActionRestart, wantPhaseReload: PhaseReloadNow, wantPhase: "overlap:bb",
		},
		"should ignore the drift backoff for the phase reload": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: refuses, StaleProcess: true, Attempts: 1, NextActionAt: now.Add(time.Minute), Rollover: waits},
			wantAction: ActionRestart, wantPhaseReload: PhaseReloadNow, wantPhase: "overlap:bb",
		},
		"should send the declared signal as the phase reload": {
			desired:    Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: OnDriftRestart, Budget: 0, ReloadSignal: "SIGHUP"},
			obs:        Observation{Container: running, Probe: refuses, StaleProcess: true, Rollover: waits},
			wantAction: ActionSignal, wantPhaseReload: PhaseReloadNow, wantPhase: "overlap:bb",
		},
		"should reload only once per phase": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: refuses, StaleProcess: true, Attempts: 3, Rollover: waits, PhaseReloadedIn: "overlap:bb"},
			wantPhaseReload: PhaseReloadSpent, wantDegraded: true,
		},
		"should reload again in the next phase": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: plainOnly, StaleProcess: true, Attempts: 3,
				Rollover: RolloverNeed{Phase: "reissue:bb", Waits: true}, PhaseReloadedIn: "overlap:bb"},
			wantAction: ActionRestart, wantPhaseReload: PhaseReloadNow, wantPhase: "reissue:bb",
		},
		"should not reload a plain-only process the phase does not wait for once its budget is spent": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: plainOnly, StaleProcess: true, Attempts: 3, Rollover: notWaited},
			wantPhaseReload: PhaseReloadNotWaited, wantDegraded: true,
		},
		"should leave a theater process the phase does not wait for to the drift ladder": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: theater, StaleProcess: true, Attempts: 1,
				Rollover: RolloverNeed{Phase: "overlap:bb", NotWaited: "client-auth-not-enforced"}},
			wantAction: ActionRestart, wantPhaseReload: PhaseReloadNotWaited,
		},
		"should not use the phase budget for a process that is not stale": {
			desired: mtlsWant, obs: Observation{Container: running, Probe: plainOnly, Attempts: 3, Rollover: waits},
			wantDegraded: true,
		},
		"should do nothing for a phase while the container is restarting": {
			desired: mtlsWant, obs: Observation{Container: func() dockerwatch.Container {
				c := newContainer()
				c.State = dockerwatch.StateRestarting
				return c
			}(), Probe: probe.Result{Level: probe.Down}, StaleProcess: true, Rollover: waits},
		},
		"should wait for the start grace before a phase reload": {
			desired: mtlsWant, obs: Observation{Container: newContainer(withRunningSince(now.Add(-time.Second))), Probe: refuses, StaleProcess: true, Attempts: 3, Rollover: waits},
		},
		"should never act for a phase with on-drift report": {
			desired:         Desired{Level: probe.MTLS, Floor: probe.Plain, OnDrift: OnDriftReport, Budget: 3},
			obs:             Observation{Container: running, Probe: refuses, StaleProcess: true, Rollover: waits},
			wantPhaseReload: PhaseReloadReportOnly, wantDegraded: true,
		},
		"should plan but not take a phase reload in observe mode": {
			policy: observe, desired: mtlsWant, obs: Observation{Container: running, Probe: refuses, StaleProcess: true, Attempts: 3, Rollover: waits},
			wantAction: ActionRestart, wantPhaseReload: PhaseReloadNow, wantPhase: "overlap:bb", wantDryRun: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := tc.policy
			if p.Environment == "" {
				p = testPolicy
			}
			o := tc.obs
			o.Now = now
			got := p.Decide(tc.desired, o)
			if got.Action != tc.wantAction || got.PhaseReload != tc.wantPhaseReload || got.Phase != tc.wantPhase ||
				(got.Degraded != "") != tc.wantDegraded || got.DryRun != tc.wantDryRun {
				t.Errorf("got action %q phase reload %q phase %q degraded %q dry run %v (reason %q), want %q %q %q degraded %v dry run %v",
					got.Action, got.PhaseReload, got.Phase, got.Degraded, got.DryRun, got.Message,
					tc.wantAction, tc.wantPhaseReload, tc.wantPhase, tc.wantDegraded, tc.wantDryRun)
			}
		})
	}
}
