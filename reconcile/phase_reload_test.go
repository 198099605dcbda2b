package reconcile

import (
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// A degraded container whose drift budget is spent still gets exactly one
// reload per rollover phase that waits for it, and the reload leaves the
// drift budget as it was.
func TestLadderReloadsOncePerPhaseOnItsOwnBudget(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.now = time.Now() // bundle write times come from the filesystem's clock
	c := f.addRunning()
	actions := &fakeActions{}
	withProbing(f, Development, probe.Plain, actions, probe.ClientCertRejected)
	if err := f.records.Put(state.Record{ContainerID: c.ID, Remediation: state.RemediationState{Attempts: 2}}); err != nil {
		t.Fatal(err)
	}
	phase := "overlap:bb"
	f.r.RolloverNeed = func(probe.Level, []probe.Reason) RolloverNeed { return RolloverNeed{Phase: phase, Waits: true} }

	// The fake restart does not move StartedAt: the process stays stale,
	// so only the once-per-phase rule stops a loop.
	f.runFor(t, c.ID, time.Hour)
	rec, _, _ := f.records.Get(c.ID)
	if actions.restarts != 1 || rec.Remediation.Attempts != 2 || rec.Remediation.PhaseReload != phase {
		t.Fatalf("got %d restarts, attempts %d, phase reload %q, want 1 restart in the phase, attempts still 2, phase %q",
			actions.restarts, rec.Remediation.Attempts, rec.Remediation.PhaseReload, phase)
	}
	phase = "reissue:bb"
	f.runFor(t, c.ID, time.Hour)
	if actions.restarts != 2 {
		t.Errorf("got %d restarts after the next phase, want 2: one per phase", actions.restarts)
	}
}

// Outside a rollover (or for a process the phase does not wait for) the
// ladder is unchanged: a spent budget means no restart.
func TestLadderDoesNotReloadWhatThePhaseDoesNotWaitFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.now = time.Now()
	c := f.addRunning()
	actions := &fakeActions{}
	withProbing(f, Development, probe.Plain, actions)
	if err := f.records.Put(state.Record{ContainerID: c.ID, Remediation: state.RemediationState{Attempts: 2}}); err != nil {
		t.Fatal(err)
	}
	f.r.RolloverNeed = func(probe.Level, []probe.Reason) RolloverNeed {
		return RolloverNeed{Phase: "overlap:bb", NotWaited: "serves-plain", Message: "serves plain"}
	}
	f.runFor(t, c.ID, time.Hour)
	rec, _, _ := f.records.Get(c.ID)
	if actions.restarts != 0 || rec.Remediation.Degraded == "" {
		t.Errorf("got %d restarts, degraded %q, want none and degraded", actions.restarts, rec.Remediation.Degraded)
	}
	if want := "the phase does not wait for it (serves-plain: serves plain)"; !strings.Contains(rec.Level.LastPlan, want) {
		t.Errorf("got plan %q, want it to say %q", rec.Level.LastPlan, want)
	}
}
