//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// A CA rollover over a stack that is still migrating: an adaptive mTLS
// service, a plain-only one and a theater one (TLS that verifies no client
// certificate), the last two degraded with their restart budget spent
// before the rollover starts. It must reach idle with the old CA retired,
// in development and in production, and say what it did not wait for and
// why. The same rollover over a clean stack (all three adaptive) runs
// beside it, and the figures of both are logged side by side with the
// prefix "MEASURE:".
//
// Compose projects and container names start with e2erollmix. Run alone:
//
//	go test -tags e2e -count=1 -run TestRolloverMixed -v -timeout 20m ./e2e/

// rmServices are the stack's services; their modes depend on the scenario.
// The rm- prefix keeps their identities apart from any other test's
// containers opted in on the same engine: the first claimant of a name
// keeps it, on every controller.
var rmServices = []string{"rm-platform", "rm-image-classifier", "rm-legacy-reporter"}

// rmEnv: 8m leaves, so no renewal lands inside a scenario (about two
// minutes) and every restart counted is the rollover's; the rest is rtEnv.
var rmEnv = []string{"CRANK_LEAF_LIFETIME=8m"}

// rmSamplePeriod is how often each service is asked to answer.
const rmSamplePeriod = 200 * time.Millisecond

type rmScenario struct {
	name  string // subtest name
	tag   string // suffix of the compose project
	env   string // CRANK_ENVIRONMENT
	mixed bool   // plain-only and theater services; else all adaptive
}

var rmScenarios = []rmScenario{
	{name: "mixed/development", tag: "mixdev", env: "development", mixed: true},
	{name: "mixed/production", tag: "mixprod", env: "production", mixed: true},
	{name: "clean/development", tag: "cleandev", env: "development"},
}

// mode is the testservice MODE of svc in the scenario.
func (sc rmScenario) mode(svc string) string {
	switch {
	case !sc.mixed:
		return "adaptive"
	case svc == "rm-image-classifier":
		return "plain-only"
	case svc == "rm-legacy-reporter":
		return "theater"
	}
	return "adaptive"
}

// rmResult is what one scenario measured.
type rmResult struct {
	name          string
	took, settled time.Duration // rotate request -> idle; -> every process settled
	restarts      map[string]int
	samples       map[string]rmCount
}

func TestRolloverMixed(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var results []rmResult
	t.Run("stacks", func(t *testing.T) {
		for _, sc := range rmScenarios {
			t.Run(sc.name, func(t *testing.T) {
				t.Parallel()
				r := rmRun(t, sc)
				mu.Lock()
				results = append(results, r)
				mu.Unlock()
			})
		}
	})
	slices.SortFunc(results, func(a, b rmResult) int { return strings.Compare(a.name, b.name) })
	t.Logf("MEASURE: rollover-mixed: %-18s %-9s %-9s %-10s %s", "stack", "rollover", "settled", "restarts", "failed/sampled every "+rmSamplePeriod.String()+" (restarts and samples in the order "+strings.Join(rmServices, ", ")+")")
	for _, r := range results {
		var restarts, failed []string
		for _, svc := range rmServices {
			restarts = append(restarts, fmt.Sprint(r.restarts[svc]))
			c := r.samples[svc]
			failed = append(failed, fmt.Sprintf("%s %d/%d", svc, c.failed, c.total))
		}
		t.Logf("MEASURE: rollover-mixed: %-18s %-9s %-9s %-10s %s", r.name, r.took.Round(100*time.Millisecond), r.settled.Round(100*time.Millisecond),
			strings.Join(restarts, "/"), strings.Join(failed, ", "))
	}
}

// rmRun runs one scenario: stack up, degraded services degraded, rotate,
// follow the rollover to idle, check the end state and the logs.
func rmRun(t *testing.T, sc rmScenario) rmResult {
	f := rtNew(t)
	proj := rmStart(t, f, sc)
	svcs, modes := map[string]*Container{}, map[string]string{}
	for _, name := range rmServices {
		modes[name] = sc.mode(name)
		maps.Copy(svcs, f.services(t, []string{name}, WithProject(proj), WithName(proj+"-"+name+"-1"), WithMode(modes[name])))
	}
	adaptive := map[string]*Container{}
	for name, c := range svcs {
		if modes[name] == "adaptive" {
			adaptive[name] = c
		} else {
			f.waitLog(t, name+" degraded", degraded(name)) // its budget is spent
		}
	}
	f.waitAllMTLS(t, adaptive, lvDeadline)
	old := f.mustCAStatus(t)
	sampler := rmSample(t, f, svcs, modes)

	since := time.Now()
	f.rotate(t)
	notWaited := rmFollow(t, f, old.ActiveCA.Fingerprint)
	done := f.waitRolloverDone(t, old.ActiveCA.Fingerprint)
	took := time.Since(since)
	f.assertOnNewCA(t, adaptive, done.ActiveCA.Fingerprint)
	for name, c := range svcs {
		if modes[name] != "adaptive" {
			rmAssertOnNewCA(t, f, c, modes[name], done.ActiveCA.Fingerprint)
		}
	}
	settled := time.Since(since)
	sampler.Stop()

	r := rmResult{name: sc.name, took: took, settled: settled, restarts: f.restarts(t, svcs, since), samples: sampler.counts()}
	t.Logf("MEASURE: rollover-mixed: %s: rotate -> idle %s, -> settled %s; restarts %v; not waited for in overlap %v",
		sc.name, took.Round(100*time.Millisecond), settled.Round(100*time.Millisecond), r.restarts, notWaited)
	rmCheckLogs(t, f, sc, modes, notWaited)
	if sc.mixed {
		for _, name := range []string{"rm-image-classifier", "rm-legacy-reporter"} {
			// Its reissue reload, and at most one per phase: never the
			// drift budget it had already spent.
			if n := r.restarts[name]; n < 1 || n > 2 {
				t.Errorf("%s: got %d restarts, want 1 or 2 (one rollover reload per phase at most); events: %s", name, n, f.events.summary(svcs[name].ID))
			}
		}
	}
	return r
}

// rmStart runs the scenario's controller in a compose project of its own
// and returns that project's name: the run's random suffix and the
// scenario's tag, unique, and short enough that every container name
// stays a DNS label (63 characters).
func rmStart(t *testing.T, f *rtFixture, sc rmScenario) string {
	t.Helper()
	proj := "e2erollmix-" + f.h.RunID[strings.LastIndex(f.h.RunID, "-")+1:] + "-" + sc.tag
	f.ctrl = f.h.StartController(t, ControllerOptions{
		Network: f.net, CertsVolume: f.certs, StateVolume: f.state, Project: proj, Name: proj + "-controller",
		Env: mergeEnv(mergeEnv(mergeEnv(lvFastEnv, rtEnv), rmEnv), []string{"CRANK_ENVIRONMENT=" + sc.env}),
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("full controller log:\n%s", f.h.Logs(t, f.ctrl.ID))
		}
	})
	f.waitReady(t)
	return proj
}

// rmFollow polls `controller ca status` until the rollover is idle on a
// new CA, and returns, per service, why the overlap did not wait for it.
func rmFollow(t *testing.T, f *rtFixture, old string) map[string]string {
	t.Helper()
	notWaited := map[string]string{}
	var phases []string
	WaitFor(t, rtRolloverDeadline, func() (bool, string) {
		st, err := f.caStatus()
		if err != nil {
			return false, err.Error()
		}
		if len(phases) == 0 || phases[len(phases)-1] != string(st.Phase) {
			phases = append(phases, string(st.Phase))
		}
		for _, k := range st.Skipped {
			if st.Phase == rotation.PhaseOverlap {
				notWaited[k.Service] = string(k.Reason)
			}
		}
		done := st.Phase == rotation.PhaseIdle && st.ActiveCA.Fingerprint != old && st.Retiring == 0
		return done, fmt.Sprintf("phases %v: %s", phases, st.Message)
	})
	t.Logf("phases seen: %v", phases)
	return notWaited
}

// rmCheckLogs checks that the controller said what it did not wait for,
// and that no phase ended on its timeout; stalls are reported.
func rmCheckLogs(t *testing.T, f *rtFixture, sc rmScenario, modes map[string]string, notWaited map[string]string) {
	t.Helper()
	want := map[string]string{"plain-only": string(rotation.SkipServesPlain), "theater": string(rotation.SkipNoClientAuth)}
	for name, mode := range modes {
		reason, skipped := want[mode]
		if !skipped {
			continue
		}
		lines := f.findLogs(t, func(l lvLog) bool {
			return strings.Contains(l.Msg, "overlap phase does not wait for "+name+" ") && l.Reason == reason
		})
		if len(lines) != 1 {
			t.Errorf("%s: got %d log lines saying the overlap does not wait for it (%s), want 1", name, len(lines), reason)
		}
		for _, l := range lines {
			t.Logf("not waited for: %s", l)
		}
		// The status shows a phase's progress only while it waits; an
		// overlap that ended on its first look was never seen waiting.
		if got, seen := notWaited[name]; seen && got != reason {
			t.Errorf("%s: got %q as why the overlap's status did not wait for it, want %q", name, got, reason)
		}
	}
	for _, l := range f.findLogs(t, func(l lvLog) bool { return strings.Contains(l.Msg, "proceeding anyway") }) {
		t.Errorf("got a phase that ended on its timeout, want every phase to end on evidence: %s", l)
	}
	for _, l := range f.findLogs(t, func(l lvLog) bool { return strings.Contains(l.Msg, "phase has waited") }) {
		t.Logf("%s: stall reported: %s", sc.name, l)
	}
	for _, l := range f.findLogs(t, func(l lvLog) bool { return strings.Contains(l.Msg, "CA rollover reload") }) {
		t.Logf("%s: rollover reload: %s", sc.name, l)
	}
}

// rmAssertOnNewCA checks a plain-only or theater service after the
// rollover: its bundle holds only the new CA and leaves it signed, and it
// answers as it did before (the theater one with a leaf of the new CA). A
// degraded service is not restarted once more after the retire, so its
// process may still trust the retired CA in memory; that is not checked.
func rmAssertOnNewCA(t *testing.T, f *rtFixture, c *Container, mode, active string) {
	t.Helper()
	f.waitTrustOnly(t, c.Service, active)
	dir := f.certs + "/" + c.Service
	cas, err := rtReadCerts(dir + "/ca.crt")
	if err != nil || len(cas) != 1 || rtFingerprint(cas[0]) != active {
		t.Errorf("%s: got trust bundle %d CAs (%v), want only the new CA %.12s", c.Service, len(cas), err, active)
		return
	}
	for _, file := range []string{"tls.crt", "client.crt"} {
		leaves, err := rtReadCerts(dir + "/" + file)
		if err != nil || leaves[0].CheckSignatureFrom(cas[0]) != nil {
			t.Errorf("%s: got %s not signed by the new CA (%v)", c.Service, file, err)
		}
	}
	WaitFor(t, lvDeadline, func() (bool, string) {
		if err := rmAnswer(f, c, mode, new(string)); err != nil {
			return false, c.Service + ": " + err.Error()
		}
		return true, ""
	})
}

// rmCount is one service's samples.
type rmCount struct {
	total, failed int
	lastErr       string
}

// rmSampler asks every service to answer, every rmSamplePeriod and
// independently of the controller, the way its clients would: mTLS for an
// adaptive service, verified TLS for a theater one, HTTP for a plain-only
// one, each with a client built from the service's current bundle.
type rmSampler struct {
	mu   sync.Mutex
	c    map[string]*rmCount
	stop context.CancelFunc
	wg   sync.WaitGroup
}

func rmSample(t *testing.T, f *rtFixture, svcs map[string]*Container, modes map[string]string) *rmSampler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &rmSampler{c: map[string]*rmCount{}, stop: cancel}
	t.Cleanup(s.Stop)
	for name, c := range svcs {
		cnt := &rmCount{}
		s.c[name] = cnt
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			tick := time.NewTicker(rmSamplePeriod)
			defer tick.Stop()
			ip := ""
			for {
				err := rmAnswer(f, c, modes[name], &ip)
				s.mu.Lock()
				cnt.total++
				if err != nil {
					cnt.failed++
					cnt.lastErr = err.Error()
					ip = "" // look the address up again: it may have moved
				}
				s.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return s
}

// Stop ends the sampling; safe to call twice.
func (s *rmSampler) Stop() {
	s.stop()
	s.wg.Wait()
}

func (s *rmSampler) counts() map[string]rmCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]rmCount{}
	for name, c := range s.c {
		out[name] = *c
	}
	return out
}

// rmAnswer makes one request to c as its clients would; *ip caches the
// container's address ("" looks it up).
func rmAnswer(f *rtFixture, c *Container, mode string, ip *string) error {
	if *ip == "" {
		ins, err := f.inspectName(c.ID)
		if err != nil {
			return err
		}
		ep := ins.NetworkSettings.Networks[f.net]
		if ep == nil || ep.IPAddress == "" {
			return fmt.Errorf("no address (restarting)")
		}
		*ip = ep.IPAddress
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if mode == "plain-only" {
		res, err := f.h.HTTPGet(ctx, "http://"+net.JoinHostPort(*ip, "8080")+"/health", nil)
		if err == nil && res.Status != 200 {
			err = fmt.Errorf("status %d", res.Status)
		}
		return err
	}
	cfg, err := f.clientTLS(c.Service)
	if err != nil {
		return err
	}
	res, err := f.h.HTTPGet(ctx, "https://"+net.JoinHostPort(*ip, "8443")+"/health", cfg)
	if err == nil && res.Status != 200 {
		err = fmt.Errorf("status %d", res.Status)
	}
	return err
}
