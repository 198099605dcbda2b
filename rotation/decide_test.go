package rotation

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// member builds a Member that is through both phases relative to t0: it
// runs, started after its bundle was written, trusts the new CA, was probed
// at mtls after the prober switched, and serves its bundle's leaf from the
// active CA. Options break one thing at a time.
func member(svc string, opts ...func(*Member)) Member {
	m := Member{
		Service: svc, Container: svc + "-1", Running: true, StartedAt: t0.Add(2 * time.Minute),
		Bundle: BundleFacts{Found: true, WrittenAt: t0.Add(time.Minute), TrustsSuccessor: true, ServerFingerprint: "aa", ServerFromActive: true, ClientFromActive: true},
		Probe:  ProbeFacts{At: t0.Add(3 * time.Minute), Observed: "mtls", Desired: "mtls", ServedFingerprint: "aa"},
	}
	for _, o := range opts {
		o(&m)
	}
	return m
}

func stopped(m *Member)          { m.Running = false }
func noBundle(m *Member)         { m.Bundle = BundleFacts{} }
func oldTrust(m *Member)         { m.Bundle.TrustsSuccessor = false }
func staleProcess(m *Member)     { m.StartedAt = t0 }
func reloadedBySignal(m *Member) { m.StartedAt, m.ReloadedAt = t0, t0.Add(2*time.Minute) }
func probedBefore(m *Member)     { m.Probe.At = t0.Add(-time.Minute) }
func rejectsNew(m *Member) {
	m.Probe.Observed, m.Probe.Findings = "plain", []string{"client-cert-rejected"}
}
func belowDesired(m *Member)  { m.Probe.Observed = "tls" }
func degraded(m *Member)      { m.Degraded = "restart budget (3) spent" }
func oldIssuer(m *Member)     { m.Bundle.ServerFromActive = false }
func oldClient(m *Member)     { m.Bundle.ClientFromActive = false }
func servesOldLeaf(m *Member) { m.Probe.ServedFingerprint = "bb" }
func servesNoTLS(m *Member) {
	m.Probe.Observed, m.Probe.Desired, m.Probe.ServedFingerprint = "plain", "plain", ""
}
func neverServedTLS(m *Member) { m.Probe.ServedFingerprint = "" }
func withContainer(n string) func(*Member) {
	return func(m *Member) { m.Container = n }
}

func TestDecide(t *testing.T) {
	t.Parallel()
	ca := CAFacts{ActiveFingerprint: "old", ActiveNotBefore: t0.Add(-1000 * time.Hour), ActiveNotAfter: t0.Add(1000 * time.Hour)}
	importedCA := ca
	importedCA.ActiveImported = true
	overlap := Meta{Phase: PhaseOverlap, PhaseSince: t0, StartedAt: t0}
	reissue := Meta{Phase: PhaseReissue, PhaseSince: t0, StartedAt: t0}
	credsSince := t0.Add(30 * time.Second)
	tests := map[string]struct {
		in          Inputs
		wantAction  Action   // the CA step to take
		wantTrigger string   // why a rollover starts, for create/recover
		wantWaiting []string // services the phase still waits for
		wantWhy     string   // substring of the first waited-for service's reason
		wantDone    [2]int   // done, total
		wantTimeout bool     // proceeding although services lag
	}{
		"should stay idle while the CA is young and nobody asked": {
			in: Inputs{Now: t0, Meta: Meta{Phase: PhaseIdle}, CA: ca},
		},
		"should start a manual rollover when a request file is present": {
			in:         Inputs{Now: t0, Meta: Meta{Phase: PhaseIdle}, CA: ca, Requested: true},
			wantAction: ActionCreateSuccessor, wantTrigger: TriggerManual,
		},
		"should adopt an imported CA that is staged and checked": {
			in:         Inputs{Now: t0, Meta: Meta{Phase: PhaseIdle}, CA: ca, ImportReady: true},
			wantAction: ActionAdoptSuccessor, wantTrigger: TriggerImport,
		},
		"should not roll an imported CA over by itself at the fraction of its lifetime": {
			in: Inputs{Now: t0.Add(900 * time.Hour), Meta: Meta{Phase: PhaseIdle}, CA: importedCA, Fraction: 0.8},
		},
		"should still roll an imported CA over when asked": {
			in:         Inputs{Now: t0.Add(900 * time.Hour), Meta: Meta{Phase: PhaseIdle}, CA: importedCA, Requested: true},
			wantAction: ActionCreateSuccessor, wantTrigger: TriggerManual,
		},
		"should recover an expired imported CA": {
			in:         Inputs{Now: t0.Add(1001 * time.Hour), Meta: Meta{Phase: PhaseIdle}, CA: importedCA},
			wantAction: ActionRecoverExpired, wantTrigger: TriggerExpired,
		},
		"should start an automatic rollover once the CA passed the fraction of its lifetime": {
			in:         Inputs{Now: t0.Add(601 * time.Hour), Meta: Meta{Phase: PhaseIdle}, CA: ca, Fraction: 0.8},
			wantAction: ActionCreateSuccessor, wantTrigger: TriggerAutomatic,
		},
		"should not start an automatic rollover just before the fraction": {
			in: Inputs{Now: t0.Add(599 * time.Hour), Meta: Meta{Phase: PhaseIdle}, CA: ca, Fraction: 0.8},
		},
		"should recover an expired CA whatever the phase": {
			in:         Inputs{Now: t0.Add(1001 * time.Hour), Meta: overlap, CA: ca},
			wantAction: ActionRecoverExpired, wantTrigger: TriggerExpired,
		},
		"should promote when every running service proved it trusts the new CA": {
			in:         Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web"), member("api")}},
			wantAction: ActionPromote, wantDone: [2]int{2, 2},
		},
		"should not wait for a stopped container": {
			in:         Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web"), member("api", stopped, oldTrust)}},
			wantAction: ActionPromote, wantDone: [2]int{1, 1},
		},
		"should wait for a service whose bundle is missing": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web"), member("api", noBundle)}},
			wantWaiting: []string{"api"}, wantWhy: "no bundle yet", wantDone: [2]int{1, 2},
		},
		"should wait for a service whose ca.crt lacks the new CA": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web", oldTrust), member("api")}},
			wantWaiting: []string{"web"}, wantWhy: "does not hold the new CA", wantDone: [2]int{1, 2},
		},
		"should wait for a process that started before its new trust bundle": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web", staleProcess)}},
			wantWaiting: []string{"web"}, wantWhy: "waiting for a restart", wantDone: [2]int{0, 1},
		},
		"should count a process that reloaded by signal after its new trust bundle": {
			in:         Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web", reloadedBySignal)}},
			wantAction: ActionPromote, wantDone: [2]int{1, 1},
		},
		"should wait for a probe made with the new CA's client certificate": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web", probedBefore)}},
			wantWaiting: []string{"web"}, wantWhy: "no probe with the new CA's client certificate", wantDone: [2]int{0, 1},
		},
		"should wait when the prober has not switched to the successor": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, Members: []Member{member("web")}},
			wantWaiting: []string{"web"}, wantWhy: "no probe with the new CA's client certificate", wantDone: [2]int{0, 1},
		},
		"should wait for a service that refused the new CA's client certificate": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web", rejectsNew)}},
			wantWaiting: []string{"web"}, wantWhy: "refused the new CA's client certificate", wantDone: [2]int{0, 1},
		},
		"should not let a service below its desired level for other reasons hold the overlap up": {
			in:         Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web", belowDesired, degraded)}},
			wantAction: ActionPromote, wantDone: [2]int{1, 1},
		},
		"should wait for a degraded service that never reloaded and say it is degraded": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Members: []Member{member("web", staleProcess, degraded)}},
			wantWaiting: []string{"web"}, wantWhy: "degraded: restart budget (3) spent", wantDone: [2]int{0, 1},
		},
		"should wait for a service when only one of its replicas is through": {
			in: Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince,
				Members: []Member{member("web"), member("web", withContainer("web-2"), oldTrust)}},
			wantWaiting: []string{"web"}, wantWhy: "web-2", wantDone: [2]int{0, 1},
		},
		"should promote anyway once the overlap passed its timeout": {
			in: Inputs{Now: t0.Add(25 * time.Hour), Meta: overlap, CA: ca, CredsSince: credsSince, Timeout: 24 * time.Hour,
				Members: []Member{member("web"), member("api", oldTrust)}},
			wantAction: ActionPromote, wantTimeout: true, wantWaiting: []string{"api"}, wantDone: [2]int{1, 2},
		},
		"should retire when every running service serves a leaf of the new CA": {
			in:         Inputs{Now: t0.Add(time.Hour), Meta: reissue, CA: ca, Members: []Member{member("web"), member("api")}},
			wantAction: ActionRetire, wantDone: [2]int{2, 2},
		},
		"should wait for a bundle not reissued by the new CA yet": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: reissue, CA: ca, Members: []Member{member("web", oldIssuer)}},
			wantWaiting: []string{"web"}, wantWhy: "not yet reissued", wantDone: [2]int{0, 1},
		},
		"should wait for a process still serving its old leaf": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: reissue, CA: ca, Members: []Member{member("web", servesOldLeaf)}},
			wantWaiting: []string{"web"}, wantWhy: "still serves its old certificate", wantDone: [2]int{0, 1},
		},
		"should wait for a service never seen serving a certificate": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: reissue, CA: ca, Members: []Member{member("web", neverServedTLS)}},
			wantWaiting: []string{"web"}, wantWhy: "no served certificate seen yet", wantDone: [2]int{0, 1},
		},
		"should not wait for a plain service that serves no TLS at all": {
			in:         Inputs{Now: t0.Add(time.Hour), Meta: reissue, CA: ca, Members: []Member{member("web", servesNoTLS)}},
			wantAction: ActionRetire, wantDone: [2]int{1, 1},
		},
		"should never retire on a timer while a service still serves an old-CA leaf": {
			in:          Inputs{Now: t0.Add(25 * time.Hour), Meta: reissue, CA: ca, Members: []Member{member("web", servesOldLeaf)}},
			wantTimeout: true, wantWaiting: []string{"web"}, wantWhy: "still serves its old certificate", wantDone: [2]int{0, 1},
		},
		"should wait for a worker whose client.crt is still from the old CA": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: reissue, CA: ca, Members: []Member{member("worker", servesNoTLS, oldClient)}},
			wantWaiting: []string{"worker"}, wantWhy: "client.crt not yet reissued", wantDone: [2]int{0, 1},
		},
		"should wait for a worker whose process still holds its old client certificate": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: reissue, CA: ca, Members: []Member{member("worker", servesNoTLS, staleProcess)}},
			wantWaiting: []string{"worker"}, wantWhy: "still presents the old client certificate", wantDone: [2]int{0, 1},
		},
		"should ignore a request during a rollover": {
			in:          Inputs{Now: t0.Add(time.Hour), Meta: overlap, CA: ca, Requested: true, CredsSince: credsSince, Members: []Member{member("web", oldTrust)}},
			wantWaiting: []string{"web"}, wantWhy: "does not hold", wantDone: [2]int{0, 1},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := Decide(tc.in)
			if d.Action != tc.wantAction {
				t.Errorf("got action %q, want %q (reason: %s)", d.Action, tc.wantAction, d.Reason)
			}
			if d.Trigger != tc.wantTrigger {
				t.Errorf("got trigger %q, want %q", d.Trigger, tc.wantTrigger)
			}
			if !slices.Equal(d.Progress.Waiting, tc.wantWaiting) {
				t.Errorf("got waiting for %v, want %v", d.Progress.Waiting, tc.wantWaiting)
			}
			if got := [2]int{d.Progress.Done, d.Progress.Total}; got != tc.wantDone {
				t.Errorf("got done/total %v, want %v", got, tc.wantDone)
			}
			if d.TimedOut != tc.wantTimeout {
				t.Errorf("got timed out %v, want %v", d.TimedOut, tc.wantTimeout)
			}
			if tc.wantWhy != "" && len(tc.wantWaiting) > 0 {
				if got := d.Progress.Why[tc.wantWaiting[0]]; !strings.Contains(got, tc.wantWhy) {
					t.Errorf("got reason %q, want it to contain %q", got, tc.wantWhy)
				}
			}
		})
	}
}

func TestProgressSummary(t *testing.T) {
	t.Parallel()
	p := Progress{Done: 4, Total: 6, Waiting: []string{"email-parser", "streaming"}, Why: map[string]string{"streaming": "streaming-1: refused"}}
	got := p.Summary("trust the new CA")
	want := "4/6 services trust the new CA; waiting for email-parser, streaming (streaming-1: refused)"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestReconcileMeta(t *testing.T) {
	t.Parallel()
	now := t0.Add(time.Hour)
	idleFiles := CAFacts{ActiveFingerprint: "A"}
	overlapFiles := CAFacts{ActiveFingerprint: "A", SuccessorFingerprint: "B"}
	reissueFiles := CAFacts{ActiveFingerprint: "B", Retiring: 1}
	overlapMeta := Meta{Phase: PhaseOverlap, Trigger: TriggerManual, StartedAt: t0, PhaseSince: t0, Successor: "B"}
	reissueMeta := Meta{Phase: PhaseReissue, Trigger: TriggerManual, StartedAt: t0, PhaseSince: t0.Add(time.Minute), Successor: "B"}
	tests := map[string]struct {
		meta      Meta
		files     CAFacts
		want      Meta // the reconciled meta
		wantNote  bool // whether the change is reported for the log
		wantPhase Phase
	}{
		"should keep a meta that matches the overlap files, start times included": {
			meta: overlapMeta, files: overlapFiles, want: overlapMeta,
		},
		"should keep a meta that matches the reissue files": {
			meta: reissueMeta, files: reissueFiles, want: reissueMeta,
		},
		"should treat no meta and one CA as idle without a note": {
			meta: Meta{}, files: idleFiles, want: Meta{Phase: PhaseIdle},
		},
		"should resume an overlap found in the files when the meta was never saved": {
			meta: Meta{Phase: PhaseIdle}, files: overlapFiles, wantNote: true,
			want: Meta{Phase: PhaseOverlap, Trigger: TriggerResumed, StartedAt: now, PhaseSince: now, Successor: "B", LastTransitionAt: now},
		},
		"should move to reissue when the promote finished before the meta was saved": {
			meta: overlapMeta, files: reissueFiles, wantNote: true,
			want: Meta{Phase: PhaseReissue, Trigger: TriggerManual, StartedAt: t0, PhaseSince: now, Successor: "B", LastTransitionAt: now},
		},
		"should move to idle when the retire finished before the meta was saved": {
			meta: reissueMeta, files: CAFacts{ActiveFingerprint: "B"}, wantNote: true,
			want: Meta{Phase: PhaseIdle, Trigger: TriggerManual, StartedAt: t0, LastTransitionAt: now},
		},
		"should follow the files when the meta names another successor": {
			meta: Meta{Phase: PhaseOverlap, Trigger: TriggerManual, StartedAt: t0, PhaseSince: t0, Successor: "Z"}, files: overlapFiles, wantNote: true,
			want: Meta{Phase: PhaseOverlap, Trigger: TriggerManual, StartedAt: t0, PhaseSince: now, Successor: "B", LastTransitionAt: now},
		},
		"should follow the files when the meta says reissue but a successor exists": {
			meta: reissueMeta, files: overlapFiles, wantNote: true,
			want: Meta{Phase: PhaseOverlap, Trigger: TriggerResumed, StartedAt: now, PhaseSince: now, Successor: "B", LastTransitionAt: now},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, note := ReconcileMeta(tc.meta, tc.files, now)
			if !metaEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if (note != "") != tc.wantNote {
				t.Errorf("got note %q, want a note: %v", note, tc.wantNote)
			}
		})
	}
}

func TestParseThresholds(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in      string
		want    []time.Duration // longest first
		wantErr bool
	}{
		"should parse the default":               {in: "720h,168h,24h", want: DefaultExpiryWarn},
		"should sort and drop duplicates":        {in: "24h, 720h,24h", want: []time.Duration{720 * time.Hour, 24 * time.Hour}},
		"should refuse an empty list":            {in: " , ", wantErr: true},
		"should refuse a negative threshold":     {in: "-1h", wantErr: true},
		"should refuse something not a duration": {in: "7d", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseThresholds(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error=%v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
