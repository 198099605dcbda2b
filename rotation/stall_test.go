package rotation

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// fakeMetrics keeps the last stalled gauges.
type fakeMetrics struct {
	mu      sync.Mutex
	stalled map[WaitReason]int
}

func (m *fakeMetrics) RolloverStalled(byLack map[WaitReason]int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stalled = byLack
}

func (m *fakeMetrics) get(r WaitReason) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stalled[r]
}

// mixedStack is web (mtls), classifier (plain only) and reporter (theater),
// the last two degraded with their drift budget spent, in an overlap the
// reconciler has written every ca.crt for and nobody has restarted yet.
func mixedStack(t *testing.T) *stack {
	t.Helper()
	s := newStack(t, withServices("web", "classifier", "reporter"))
	for _, id := range []string{"classifier-1", "reporter-1"} {
		s.store.update(id, func(r *state.Record) { r.Remediation.Degraded = "restart budget (3) spent" })
	}
	if err := WriteRequest(s.dir, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	s.advance(time.Second)
	for _, svc := range []string{"web", "classifier", "reporter"} {
		s.writeCA(svc)
	}
	s.advance(time.Second)
	s.probe("web-1", "plain", "client-cert-rejected")
	s.probe("classifier-1", "plain")
	s.probe("reporter-1", "tls", "client-auth-not-enforced")
	return s
}

func TestRotatorFinishesAMixedStackAndSaysWhatItDidNotWaitFor(t *testing.T) {
	t.Parallel()
	s := mixedStack(t)
	s.step()
	st := s.rot.Status()
	if st.Phase != PhaseOverlap || len(st.WaitingFor) != 1 || st.WaitingFor[0] != "web" || len(st.Skipped) != 2 {
		t.Fatalf("got %+v, want the overlap waiting for web only, with two members not waited for", st)
	}
	if st.Skipped[0].Reason != SkipServesPlain || st.Skipped[1].Reason != SkipNoClientAuth {
		t.Errorf("got not waited for %+v, want classifier serves-plain and reporter client-auth-not-enforced", st.Skipped)
	}
	s.advance(time.Second)
	s.step()
	for _, svc := range []string{"classifier (classifier-1): serves-plain", "reporter (reporter-1): client-auth-not-enforced"} {
		if n := s.logs.count(slog.LevelInfo, "does not wait for "+svc); n != 1 {
			t.Errorf("got %d lines saying the overlap does not wait for %s, want 1:\n%s", n, svc, s.logs.dump())
		}
	}

	s.advance(time.Second)
	s.restart("web-1") // its rollover reload
	s.advance(time.Second)
	s.probe("web-1", "mtls")
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Fatalf("got phase %s with only the degraded services not restarted, want reissue:\n%s", got, s.logs.dump())
	}
	s.everyoneReloads(true)
	s.step()
	if got := s.meta().Phase; got != PhaseIdle || len(s.a.Retiring()) != 0 {
		t.Fatalf("got phase %s with %d retiring CAs, want idle with none:\n%s", got, len(s.a.Retiring()), s.logs.dump())
	}
	if n := s.logs.count(slog.LevelWarn, "has waited"); n != 0 {
		t.Errorf("got %d stall lines in a rollover that moved, want 0:\n%s", n, s.logs.dump())
	}
}

func TestRotatorReportsAStallOnceNamingWhatIsMissing(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		production bool
		want       slog.Level // the severity of the stall line
	}{
		"development warns": {want: slog.LevelWarn},
		"production errs":   {production: true, want: slog.LevelError},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := mixedStack(t)
			m := &fakeMetrics{}
			s.rot.StallAfter, s.rot.ActionInterval, s.rot.Production, s.rot.Metrics = time.Minute, 5*time.Second, tc.production, m
			s.step()
			s.advance(time.Minute) // within 1m + one action interval
			s.step()
			if n := s.logs.count(tc.want, "has waited"); n != 0 || m.get(WaitProcessStale) != 0 {
				t.Fatalf("got %d stall lines (gauge %d) before the threshold, want none", n, m.get(WaitProcessStale))
			}
			s.advance(10 * time.Second)
			s.step()
			s.advance(time.Second)
			s.step()
			want := "has waited 1m10s for web (web-1), which lacks process-older-than-bundle"
			if n := s.logs.count(tc.want, want); n != 1 {
				t.Errorf("got %d %s lines %q, want 1:\n%s", n, tc.want, want, s.logs.dump())
			}
			if got := m.get(WaitProcessStale); got != 1 {
				t.Errorf("got stalled gauge %d for %s, want 1", got, WaitProcessStale)
			}
			if b := s.rot.Status().Blockers; len(b) != 1 || !b[0].Stalled || b[0].Lacks != WaitProcessStale {
				t.Errorf("got blockers %+v in the status, want web stalled lacking %s", b, WaitProcessStale)
			}
		})
	}
}

func TestRotatorKeepsTheStallClockAcrossARestart(t *testing.T) {
	t.Parallel()
	s := mixedStack(t)
	s.rot.StallAfter = time.Minute
	s.step()
	s.advance(2 * time.Minute)
	s.rot = s.newRotator() // a controller restart: the clock is in the meta
	s.rot.StallAfter = time.Minute
	s.step()
	if n := s.logs.count(slog.LevelWarn, "has waited 2m0s for web"); n != 1 {
		t.Errorf("got %d stall lines after a restart, want 1 counting from before it:\n%s", n, s.logs.dump())
	}
}

func TestMarkStalls(t *testing.T) {
	t.Parallel()
	p := Progress{Waiting: []string{"api", "web"}, Blockers: []Blocker{
		{Service: "api", Lacks: WaitProcessStale}, {Service: "web", Lacks: WaitNoProbe},
	}}
	since := map[string]time.Time{"api": t0, "gone": t0}
	got, next := markStalls(p, since, t0.Add(2*time.Minute), time.Minute)
	if !got.Blockers[0].Stalled || !got.Blockers[0].Since.Equal(t0) {
		t.Errorf("got api %+v, want stalled since t0", got.Blockers[0])
	}
	if got.Blockers[1].Stalled || !got.Blockers[1].Since.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("got web %+v, want waited for from now, not stalled", got.Blockers[1])
	}
	if _, ok := next["gone"]; ok || len(next) != 2 {
		t.Errorf("got since %v, want api and web only", next)
	}
	if th := stallThreshold(time.Minute, 5*time.Second, 4); th != 80*time.Second {
		t.Errorf("got threshold %s, want 80s: one action interval per waited-for service on top", th)
	}
}

// An overlap can end on its first look (every process the phase waits for
// reloaded between two steps): the members it did not wait for are still
// logged.
func TestRotatorSaysWhatItDidNotWaitForWhenAPhaseEndsAtOnce(t *testing.T) {
	t.Parallel()
	s := mixedStack(t)
	s.restart("web-1")
	s.advance(time.Second)
	s.probe("web-1", "mtls")
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Fatalf("got phase %s, want reissue on the first look", got)
	}
	for _, svc := range []string{"classifier (classifier-1): serves-plain", "reporter (reporter-1): client-auth-not-enforced"} {
		if n := s.logs.count(slog.LevelInfo, "overlap phase does not wait for "+svc); n != 1 {
			t.Errorf("got %d lines saying the overlap does not wait for %s, want 1:\n%s", n, svc, s.logs.dump())
		}
	}
}
