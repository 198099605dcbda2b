package rotation

import (
	"slices"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// Member kinds as the probe sees them during an overlap, each probed with
// the successor's client certificate after the prober switched to it.
func theater(m *Member) {
	m.Probe.Observed, m.Probe.Findings = "tls", []string{"client-auth-not-enforced"}
}
func plainOnly(m *Member)     { m.Probe.Observed, m.Probe.ServedFingerprint = "plain", "" }
func servesNothing(m *Member) { m.Probe.Observed, m.Probe.ServedFingerprint = "down", "" }
func restarting(m *Member)    { m.Running, m.State = false, dockerwatch.StateRestarting }
func exited(m *Member)        { m.Running, m.State = false, dockerwatch.StateExited }
func silentAfterHandshake(m *Member) {
	m.Probe.Observed, m.Probe.Findings = "plain", []string{"health-not-ok"}
}
func phaseReloadSpent(m *Member) { m.PhaseReloaded = true }

func TestOverlapWaitsOnlyForEvidenceThatMatters(t *testing.T) {
	t.Parallel()
	ca := CAFacts{ActiveFingerprint: "old", ActiveNotBefore: t0.Add(-1000 * time.Hour), ActiveNotAfter: t0.Add(1000 * time.Hour)}
	overlap := Meta{Phase: PhaseOverlap, PhaseSince: t0, StartedAt: t0}
	credsSince := t0.Add(30 * time.Second)
	tests := map[string]struct {
		kind []func(*Member)
		// wantPromote: the overlap is over with this member alone.
		wantPromote bool
		// wantWait is what the member lacks when it is waited for;
		// wantSkip why it is not waited for ("" for both: through).
		wantWait WaitReason
		wantSkip SkipReason
	}{
		"should promote once an mtls service restarted and accepted the new CA": {
			wantPromote: true,
		},
		"should wait for an mtls service still running on its old trust": {
			kind: []func(*Member){staleProcess, rejectsNew}, wantWait: WaitProcessStale,
		},
		"should not wait for a theater service that verifies no client certificate": {
			kind: []func(*Member){staleProcess, theater}, wantPromote: true, wantSkip: SkipNoClientAuth,
		},
		"should not wait for a plain-only service": {
			kind: []func(*Member){staleProcess, plainOnly}, wantPromote: true, wantSkip: SkipServesPlain,
		},
		"should not wait for a running service that answers on no port": {
			kind: []func(*Member){staleProcess, servesNothing}, wantPromote: true, wantSkip: SkipServesNothing,
		},
		"should not wait for a plain-only service whose restart budget is spent": {
			kind: []func(*Member){staleProcess, plainOnly, degraded}, wantPromote: true, wantSkip: SkipServesPlain,
		},
		"should not wait for a theater service whose restart budget is spent": {
			kind: []func(*Member){staleProcess, theater, degraded}, wantPromote: true, wantSkip: SkipNoClientAuth,
		},
		"should wait for a degraded service that refuses the new CA": {
			kind: []func(*Member){staleProcess, rejectsNew, degraded}, wantWait: WaitProcessStale,
		},
		"should not wait for a stopped container": {
			kind: []func(*Member){staleProcess, exited}, wantPromote: true, wantSkip: SkipStopped,
		},
		"should not wait for a restarting container, which loads the new bundle when it starts": {
			kind: []func(*Member){staleProcess, restarting}, wantPromote: true, wantSkip: SkipRestarting,
		},
		"should wait for a plain service that refused the new CA's client certificate": {
			kind: []func(*Member){staleProcess, plainOnly, rejectsNew}, wantWait: WaitProcessStale,
		},
		"should wait for a plain service whose handshake verified and then went silent": {
			kind: []func(*Member){staleProcess, silentAfterHandshake}, wantWait: WaitProcessStale,
		},
		"should wait for a restarted service that still refuses the new CA": {
			kind: []func(*Member){rejectsNew}, wantWait: WaitRefusedNewCA,
		},
		"should not skip a theater service on a probe made before the prober switched": {
			kind: []func(*Member){staleProcess, theater, probedBefore}, wantWait: WaitNoProbe,
		},
		"should wait for the trust bundle of a plain-only service first": {
			kind: []func(*Member){staleProcess, plainOnly, oldTrust}, wantWait: WaitTrustNotCurrent,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			m := member("svc", tc.kind...)
			d := Decide(Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{m}})
			if got := d.Action == ActionPromote; got != tc.wantPromote {
				t.Errorf("got promote %v (action %q: %s), want %v", got, d.Action, d.Progress.Summary("trust"), tc.wantPromote)
			}
			v := OverlapVerdict(m, credsSince)
			if v.Wait != tc.wantWait || v.Skip != tc.wantSkip {
				t.Errorf("got wait %q skip %q (%s), want wait %q skip %q", v.Wait, v.Skip, v.Message, tc.wantWait, tc.wantSkip)
			}
			wantSkipped := 0
			if tc.wantSkip != "" {
				wantSkipped = 1
			}
			if len(d.Progress.Skipped) != wantSkipped || (wantSkipped == 1 && d.Progress.Skipped[0].Reason != tc.wantSkip) {
				t.Errorf("got not waited for %+v, want %d with reason %q", d.Progress.Skipped, wantSkipped, tc.wantSkip)
			}
			if !tc.wantPromote && (!slices.Equal(d.Progress.Waiting, []string{"svc"}) || d.Progress.Blockers[0].Lacks != tc.wantWait) {
				t.Errorf("got blockers %+v, want svc lacking %q", d.Progress.Blockers, tc.wantWait)
			}
		})
	}
}

// Reissue waits for every running process, whatever it serves: each must
// present a client certificate of the new CA before the old one goes.
func TestReissueVerdictByMemberKind(t *testing.T) {
	t.Parallel()
	promoted := t0.Add(30 * time.Second)
	tests := map[string]struct {
		kind []func(*Member)
		// wantWait and wantSkip: see TestOverlapWaitsOnlyForEvidenceThatMatters.
		wantWait WaitReason
		wantSkip SkipReason
	}{
		"should be through for an mtls service serving its new leaf":          {},
		"should wait for an mtls service still serving its old leaf":          {kind: []func(*Member){servesOldLeaf}, wantWait: WaitServesOldLeaf},
		"should wait for a theater service that has not restarted":            {kind: []func(*Member){theater, staleProcess}, wantWait: WaitProcessStale},
		"should be through for a theater service serving its new leaf":        {kind: []func(*Member){theater}},
		"should wait for a plain-only service that has not restarted":         {kind: []func(*Member){plainOnly, staleProcess}, wantWait: WaitProcessStale},
		"should be through for a plain-only service probed since its restart": {kind: []func(*Member){plainOnly}},
		"should be through for a service serving nothing since its restart":   {kind: []func(*Member){servesNothing}},
		"should wait for a degraded plain-only service that has not restarted": {
			kind: []func(*Member){plainOnly, staleProcess, degraded}, wantWait: WaitProcessStale,
		},
		"should wait for a worker whose client.crt is from the old CA": {kind: []func(*Member){plainOnly, oldClient}, wantWait: WaitClientOldCA},
		"should not wait for a stopped container":                      {kind: []func(*Member){staleProcess, exited}, wantSkip: SkipStopped},
		"should not wait for a restarting container":                   {kind: []func(*Member){staleProcess, restarting}, wantSkip: SkipRestarting},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			v := ReissueVerdict(member("svc", tc.kind...), promoted)
			if v.Wait != tc.wantWait || v.Skip != tc.wantSkip {
				t.Errorf("got wait %q skip %q (%s), want wait %q skip %q", v.Wait, v.Skip, v.Message, tc.wantWait, tc.wantSkip)
			}
		})
	}
}

func TestVerdictSaysWhenTheRestartWillNotCome(t *testing.T) {
	t.Parallel()
	v := OverlapVerdict(member("svc", staleProcess, rejectsNew, degraded, phaseReloadSpent), t0.Add(30*time.Second))
	want := "process started before its new trust bundle; waiting for a restart; the controller already restarted it once in this phase (its rollover reload) and its drift budget is spent (restart budget (3) spent): restart it by hand"
	if v.Wait != WaitProcessStale || v.Message != want {
		t.Errorf("got %q: %q, want %q: %q", v.Wait, v.Message, WaitProcessStale, want)
	}
}

func TestReloadNeed(t *testing.T) {
	t.Parallel()
	overlap := CAFacts{ActiveFingerprint: "aa", SuccessorFingerprint: "bb"}
	reissue := CAFacts{ActiveFingerprint: "bb", Retiring: 1}
	tests := map[string]struct {
		ca    CAFacts
		probe ProbeFacts
		want  ReloadNeed // what the reconciler is told
	}{
		"should need nothing outside a rollover": {
			ca: CAFacts{ActiveFingerprint: "aa"}, probe: ProbeFacts{Observed: "plain"},
		},
		"should wait for an mtls process during the overlap": {
			ca: overlap, probe: ProbeFacts{Observed: "plain", Findings: []string{"client-cert-rejected"}},
			want: ReloadNeed{Phase: "overlap:bb", Waits: true},
		},
		"should not wait for a theater process during the overlap": {
			ca: overlap, probe: ProbeFacts{Observed: "tls", Findings: []string{"client-auth-not-enforced"}},
			want: ReloadNeed{Phase: "overlap:bb", Skip: SkipNoClientAuth},
		},
		"should not wait for a plain-only process during the overlap": {
			ca: overlap, probe: ProbeFacts{Observed: "plain"}, want: ReloadNeed{Phase: "overlap:bb", Skip: SkipServesPlain},
		},
		"should wait for a plain-only process during reissue": {
			ca: reissue, probe: ProbeFacts{Observed: "plain"}, want: ReloadNeed{Phase: "reissue:bb", Waits: true},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := reloadNeed(tc.ca, tc.probe)
			got.Message = ""
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
