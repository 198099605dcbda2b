package main

import (
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/rotation"
)

func TestCAStatusShowsStallsAndWhatIsNotWaitedFor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeStatusFile(t, dir, rotation.Status{
		Phase: rotation.PhaseOverlap, Done: 0, Total: 1, WaitingFor: []string{"platform"},
		Blockers: []rotation.Blocker{{Service: "platform", Container: "crank-platform-1", Lacks: rotation.WaitProcessStale,
			Since: caNow.Add(-5 * time.Minute), Stalled: true}},
		Skipped: []rotation.Skipped{{Service: "legacy-reporter", Container: "crank-legacy-reporter-1",
			Reason: rotation.SkipNoClientAuth, Message: "it verifies no client certificate"}},
		ActiveCA: rotation.CAStatus{Fingerprint: "abcdef0123456789abcdef", Subject: "CN=old", NotAfter: caNow.Add(900 * time.Hour)},
	})
	code, out, errOut := runCAForTest(t, nil, "status", "--state-dir", dir)
	if code != caOK {
		t.Fatalf("got exit %d, want %d (stderr %q)", code, caOK, errOut)
	}
	for _, want := range []string{"stalled:", "platform", "lacks process-older-than-bundle",
		"not waited for:", "crank-legacy-reporter-1", "client-auth-not-enforced: it verifies no client certificate"} {
		if !strings.Contains(out, want) {
			t.Errorf("got stdout %q, want it to contain %q", out, want)
		}
	}
}
