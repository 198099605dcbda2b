//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// Real-engine scenarios of the CA lifecycle: leaf renewals and CA rollovers
// on a running stack, with short lifetimes (2m leaves, 10m CA, see rtEnv), and
// the recovery from an expired CA. Services are the testservice in adaptive
// mode: it loads its certificates once at start, like uvicorn, so every
// renewal and every rollover phase costs it a restart. Restarts are counted
// from the engine's events; what a service serves is checked from outside
// with a verifying client built from its own bundle. Figures worth tracking
// are logged with the prefix "MEASURE:".
//
// Run them alone with: go test -tags e2e ./e2e -run TestRotation -v

// The six services of the Crank stack, all adaptive here.
var rtSixServices = []string{"platform", "document-converter", "email-classifier", "email-parser", "image-classifier", "streaming"}

// Six services stay at mtls through two leaf renewals: each renewed leaf is
// served within rtServedDeadline of reaching the disk, each service is
// restarted once per renewal and no more, and no service stops answering
// mTLS for longer than a restart takes.
func TestRotationLeafRenewals(t *testing.T) {
	t.Parallel()
	f := rtNew(t)
	f.start(t)
	svcs := f.services(t, rtSixServices)
	f.waitAllMTLS(t, svcs, lvDeadline)

	since := time.Now()
	avail := f.sampleAvailability(t, svcs)
	// Two renewals at 2/3 of a 2m leaf: about 80s apart.
	WaitFor(t, 2*rtLeafLifetime+rtServedDeadline, func() (bool, string) {
		var behind []string
		for _, name := range rtSixServices {
			if s := avail.snapshot(name); len(s.serials) < 3 {
				behind = append(behind, fmt.Sprintf("%s: %d serials", name, len(s.serials)))
			}
		}
		return len(behind) == 0, "waiting for two renewals of " + strings.Join(behind, ", ")
	})
	// The second renewal must be seen SERVED before the books close: mTLS
	// keeps answering with the old leaf until the restart, so answering
	// alone proves nothing. Wait (up to the deadline) for the sampler to
	// have seen each service's first two renewals on the wire; what is
	// still missing then is reported below.
	deadline := time.Now().Add(rtServedDeadline)
	for time.Now().Before(deadline) {
		missing := false
		for _, name := range rtSixServices {
			s := avail.snapshot(name)
			for i := 1; i < len(s.serials) && i <= 2; i++ {
				if s.servedAfter[i] < 0 {
					missing = true
				}
			}
		}
		if !missing {
			break
		}
		time.Sleep(rtSamplePeriod)
	}
	avail.Stop()

	restarts := f.restartsBetween(t, svcs, since, time.Now())
	for _, name := range rtSixServices {
		s := avail.snapshot(name)
		renewals := len(s.serials) - 1
		var lags []string
		for i := 1; i < len(s.serials); i++ {
			lag := s.servedAfter[i]
			lags = append(lags, lag.Round(100*time.Millisecond).String())
			switch {
			case i > 2:
				// Only the first two renewals are waited for in full.
			case lag < 0:
				t.Errorf("%s: renewal %d (serial %s, on disk at %s) was never seen served, want within %s",
					name, i, s.serials[i], s.seenAt[i].Format("15:04:05.000"), rtServedDeadline)
			case lag > rtServedDeadline:
				t.Errorf("%s: renewal %d served %s after it reached the disk, want within %s", name, i, lag, rtServedDeadline)
			}
		}
		t.Logf("MEASURE: leaf-renewals: %s: renewals=%d restarts=%d not-answering-mtls=%s (longest %s; %d/%d samples every %s failed) served-after-disk=%v",
			name, renewals, restarts[name], s.down.Round(100*time.Millisecond), s.longest.Round(100*time.Millisecond),
			s.failed, s.samples, rtSamplePeriod, lags)
		if s.failed > 0 {
			t.Logf("%s: last failed sample: %s", name, s.lastErr)
		}
		// A service that cannot reload needs exactly one restart per
		// renewal: more is a loop, fewer means a renewal was never served.
		if restarts[name] != renewals {
			t.Errorf("%s: got %d restarts for %d renewals, want one per renewal; events: %s",
				name, restarts[name], renewals, f.events.summary(svcs[name].ID))
		}
		// A restart of the testservice takes well under a second; the
		// longest outage is one restart plus a sampling period or two.
		if s.longest > 10*time.Second {
			t.Errorf("%s: got an outage of %s, want at most 10s (one restart)", name, s.longest)
		}
	}
}

// A CA rollover on a stack where a worker calls the platform over mTLS five
// times a second: it goes idle -> overlap -> reissue -> idle, every service
// ends trusting only the new CA and serving its leaf, and the worker loses
// only the calls in flight while the platform (or itself) restarts.
func TestRotationCARolloverLosesNoRequests(t *testing.T) {
	t.Parallel()
	const callInterval = 200 * time.Millisecond
	f := rtNew(t)
	f.start(t)
	svcs := f.services(t, []string{"platform"})
	worker := f.services(t, []string{"worker"},
		WithEnv("CALL_URL=https://platform:8443/health", "CALL_INTERVAL="+callInterval.String()))["worker"]
	svcs["worker"] = worker
	f.waitAllMTLS(t, svcs, lvDeadline)
	calls := f.followCalls(t, worker)
	WaitFor(t, 30*time.Second, func() (bool, string) {
		ok, failed, _ := calls.total()
		return ok > 0, fmt.Sprintf("worker calls ok=%d failed=%d", ok, failed)
	})
	failedBefore, _ := f.workerFailed(t, worker)
	old := f.mustCAStatus(t)
	if old.Phase != rotation.PhaseIdle {
		t.Fatalf("got phase %s before the rotate request, want idle", old.Phase)
	}

	since := time.Now()
	f.rotate(t)
	// The rollover must actually pass through its phases, not jump.
	var phases []string
	WaitFor(t, rtRolloverDeadline, func() (bool, string) {
		st, err := f.caStatus()
		if err != nil {
			return false, err.Error()
		}
		if len(phases) == 0 || phases[len(phases)-1] != string(st.Phase) {
			phases = append(phases, string(st.Phase))
		}
		return st.Phase == rotation.PhaseReissue || (st.Phase == rotation.PhaseIdle && st.ActiveCA.Fingerprint != old.ActiveCA.Fingerprint),
			fmt.Sprintf("phases %v: %s", phases, st.Message)
	})
	done := f.waitRolloverDone(t, old.ActiveCA.Fingerprint)
	took := time.Since(since)
	f.assertOnNewCA(t, svcs, done.ActiveCA.Fingerprint) // waits for the last restarts too
	settled := time.Since(since)
	calls.Stop()

	ok, _, lives := calls.total()
	failedAll, errs := f.workerFailed(t, worker)
	failed := failedAll - failedBefore
	restarts := f.restarts(t, svcs, since)
	t.Logf("MEASURE: ca-rollover: rotate request -> idle with the new CA = %s (phases seen %v); -> every process on the final bundle = %s",
		took.Round(100*time.Millisecond), phases, settled.Round(100*time.Millisecond))
	t.Logf("MEASURE: ca-rollover: restarts platform=%d worker=%d", restarts["platform"], restarts["worker"])
	t.Logf("MEASURE: ca-rollover: worker calls ok>=%d failed=%d during the rollover (interval %s, %d worker lives)", ok, failed, callInterval, lives)
	for _, e := range errs {
		t.Logf("worker call error: %s", e)
	}
	for _, line := range f.findLogs(t, func(l lvLog) bool { return strings.Contains(l.Msg, "proceeding anyway") }) {
		t.Errorf("got a phase that ended on its timeout, want every phase to end on evidence: %s", line)
	}
	// The loss bound. A call fails only while the platform cannot answer,
	// i.e. during a restart: the testservice stops within 500ms
	// (shutdownGrace) and listens again within about a second, so a restart
	// window is under 2s, and the worker calls every 200ms: at most
	// ceil(2s/200ms) = 10 calls per restart. A restart of the worker itself
	// can cut the call in flight (and its counters restart, which is why
	// failures come from its log), so worker restarts count too. A failure
	// outside a restart (a handshake refused because one side does not yet
	// trust the other's CA) is exactly what the overlap exists to prevent,
	// and would break the bound as soon as it repeats for a few calls.
	perRestart := int(math.Ceil(float64(2*time.Second) / float64(callInterval)))
	bound := (restarts["platform"] + restarts["worker"]) * perRestart
	if failed > bound {
		t.Errorf("got %d failed calls, want at most %d (%d restarts x %d calls per restart window)",
			failed, bound, restarts["platform"]+restarts["worker"], perRestart)
	}
	if ok == 0 {
		t.Errorf("got no successful worker calls during the rollover, want them to keep flowing")
	}
}

// A controller SIGKILLed in the middle of a rollover comes back on the same
// state volume and finishes that rollover (the same new CA, not a fresh
// one), leaving every service at mtls on the new CA.
func TestRotationResumesAfterControllerKill(t *testing.T) {
	t.Parallel()
	f := rtNew(t)
	f.start(t)
	svcs := f.services(t, []string{"platform", "api", "worker"})
	f.waitAllMTLS(t, svcs, lvDeadline)
	old := f.mustCAStatus(t)

	since := time.Now()
	f.rotate(t)
	var at rotation.Status
	WaitFor(t, rtRolloverDeadline, func() (bool, string) {
		st, err := f.caStatus()
		if err != nil {
			return false, err.Error()
		}
		at = st
		return st.Phase == rotation.PhaseOverlap || st.Phase == rotation.PhaseReissue, "phase " + string(st.Phase)
	})
	// The CA the rollover is moving to: the successor during the overlap,
	// already the active one during reissue.
	next := at.ActiveCA.Fingerprint
	if at.Phase == rotation.PhaseOverlap {
		if at.Successor == nil {
			t.Fatalf("got phase overlap without a successor CA in the status: %+v", at)
		}
		next = at.Successor.Fingerprint
	}

	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	if err := f.h.Docker.ContainerKill(ctx, f.ctrl.ID, "SIGKILL"); err != nil {
		t.Fatalf("killing the controller: %v", err)
	}
	waitc, errc := f.h.Docker.ContainerWait(ctx, f.ctrl.ID, container.WaitConditionNotRunning)
	select {
	case <-waitc:
	case err := <-errc:
		t.Fatalf("waiting for the killed controller to stop: %v", err)
	}
	t.Logf("controller SIGKILLed in phase %s (%s), moving to CA %.12s", at.Phase, at.Message, next)
	if err := f.h.Docker.ContainerStart(ctx, f.ctrl.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting the controller again: %v", err)
	}
	f.waitReady(t)

	done := f.waitRolloverDone(t, old.ActiveCA.Fingerprint)
	t.Logf("MEASURE: resume-after-kill: rotate request -> idle = %s (killed in %s)", time.Since(since).Round(100*time.Millisecond), at.Phase)
	if done.ActiveCA.Fingerprint != next {
		t.Errorf("got active CA %.12s after the restart, want %.12s, the one the interrupted rollover was moving to", done.ActiveCA.Fingerprint, next)
	}
	f.assertOnNewCA(t, svcs, done.ActiveCA.Fingerprint)
	t.Logf("MEASURE: resume-after-kill: restarts %v", f.restarts(t, svcs, since))
	for _, line := range f.findLogs(t, func(l lvLog) bool { return strings.Contains(l.Msg, "proceeding anyway") }) {
		t.Errorf("got a phase that ended on its timeout, want every phase to end on evidence: %s", line)
	}
}

// The controller was down while its CA expired, and the services still run
// with leaves of it. Started again, it must not stay down: it recovers with
// a new CA (logging an ERROR about the expired one), reissues every bundle
// and brings the services back to mtls on the new CA. Time is not waited
// for: the expired CA and its leaves are made in the test, in the past.
func TestRotationRecoversFromExpiredCA(t *testing.T) {
	t.Parallel()
	f := rtNew(t)
	names := []string{"platform", "api"}
	past := time.Now().Add(-3 * time.Hour)
	expired := rtSeedExpired(t, f, past, names)

	// The services boot with the expired CA's bundle: adaptive sees a full
	// bundle and serves mtls with certificates nobody should accept now.
	svcs := map[string]*Container{}
	for _, name := range names {
		svcs[name] = f.h.RunService(t, f.serviceOpts(name)...)
	}
	for name, c := range svcs {
		if ok, why := f.checkMTLS(t, c); ok {
			t.Fatalf("%s: got %s with an expired leaf, want the verifying client to refuse it", name, why)
		}
	}

	since := time.Now()
	f.start(t)
	f.waitAllMTLS(t, svcs, lvDeadline)
	t.Logf("MEASURE: expired-ca: controller start -> all services mtls on the new CA = %s", time.Since(since).Round(100*time.Millisecond))

	st := f.mustCAStatus(t)
	if st.ActiveCA.Fingerprint == expired || !st.ActiveCA.NotAfter.After(time.Now()) {
		t.Errorf("got active CA %.12s valid until %s, want a new, valid CA (the expired one is %.12s)",
			st.ActiveCA.Fingerprint, st.ActiveCA.NotAfter, expired)
	}
	if st.Phase != rotation.PhaseIdle || st.Retiring != 0 {
		t.Errorf("got phase %s with %d retiring CAs, want idle with none: an expired CA protects nothing", st.Phase, st.Retiring)
	}
	f.assertOnNewCA(t, svcs, st.ActiveCA.Fingerprint)
	errs := f.findLogs(t, func(l lvLog) bool { return l.Level == "ERROR" && strings.Contains(l.Msg, "expired") })
	if len(errs) == 0 {
		t.Errorf("got no ERROR line about the expired CA, want one")
	}
	for _, l := range errs {
		t.Logf("expired CA log: %s", l)
	}
	ins := f.h.Inspect(t, f.ctrl.ID)
	if !ins.State.Running || ins.RestartCount != 0 {
		t.Errorf("got controller running=%v restarts=%d, want it up since its first start", ins.State.Running, ins.RestartCount)
	}
	restarts := f.restarts(t, svcs, since)
	t.Logf("MEASURE: expired-ca: restarts %v", restarts)
	for name, n := range restarts {
		if n != 1 {
			t.Errorf("%s: got %d restarts, want 1 (to load the reissued bundle); events: %s", name, n, f.events.summary(svcs[name].ID))
		}
	}
}

// rtSeedExpired writes a CA that expired an hour ago into the controller's
// state volume, and bundles it issued (expired too) into the certs dir, as a
// controller that was down for too long leaves them. It returns the CA's
// fingerprint.
func rtSeedExpired(t *testing.T, f *rtFixture, past time.Time, services []string) string {
	t.Helper()
	ca := testpki.NewCA(t, testpki.WithCommonName("crank-mtls-controller CA (expired, e2e)"),
		testpki.WithValidity(past, past.Add(2*time.Hour)), // NotAfter an hour ago
		testpki.WithKeyUsage(x509.KeyUsageCertSign|x509.KeyUsageCRLSign|x509.KeyUsageDigitalSignature))
	caPEM, keyPEM := ca.CertPEM, ca.KeyPEM
	f.h.WriteVolumeFile(t, f.state, "ca.crt", caPEM, 0o644)
	f.h.WriteVolumeFile(t, f.state, "ca.key", keyPEM, 0o600)

	// Issue the services' bundles from it while it was valid, through the
	// certs package on a scratch copy, and publish them the controller's way.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ca.crt"), caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ca.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	then := past.Add(time.Hour)
	auth, _, err := certs.OpenAuthority(dir, certs.AuthorityOptions{}, then)
	if err != nil {
		t.Fatalf("opening the seeded CA: %v", err)
	}
	vol, err := certs.OpenVolume(f.certs)
	if err != nil {
		t.Fatal(err)
	}
	defer vol.Close()
	for _, svc := range services {
		b, _, err := auth.IssueBundle(certs.Identity{Service: svc, DNSNames: []string{svc, "localhost"}},
			certs.IssueOptions{Lifetime: 30 * time.Minute, Now: then})
		if err != nil {
			t.Fatalf("issuing the seeded bundle of %s: %v", svc, err)
		}
		if _, err := vol.WriteBundle(svc, b, certs.Owner{UID: -1, GID: -1}); err != nil {
			t.Fatalf("writing the seeded bundle of %s: %v", svc, err)
		}
	}
	return rtFingerprint(ca.Cert)
}
