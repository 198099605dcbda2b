//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// Fixtures of the CA rollover and renewal scenarios (rotation_test.go),
// prefixed rt. They reuse the levels fixture (lvNew, startService,
// checkMTLS, the engine's events) and add a state volume the test owns, so
// a test can seed it and a killed controller comes back with the same one.

// rtEnv: short lifetimes (2m leaves, 10m CA) with the fast
// ladder; later entries of a test's own env win. The rollover looks every
// second, and its phase timeout is beyond any test's deadline, so a phase
// that ends did so on evidence, never on the timeout.
var rtEnv = []string{
	"CRANK_LEAF_LIFETIME=" + rtLeafLifetime.String(),
	"CRANK_CA_LIFETIME=10m",
	"CRANK_PROBE_INTERVAL=2s",
	"CRANK_START_GRACE=2s",
	"CRANK_RESTART_BACKOFF=2s",
	"CRANK_ACTION_INTERVAL=1s",
	"CRANK_RESTART_BUDGET=3",
	"CRANK_CA_ROTATE_INTERVAL=1s",
	"CRANK_CA_ROTATE_TIMEOUT=30m",
}

const (
	rtLeafLifetime = 2 * time.Minute
	// rtRolloverDeadline bounds a whole rollover: three phases, each
	// restarting every service once, one action a second.
	rtRolloverDeadline = 3 * time.Minute
	// rtServedDeadline bounds how long a renewed leaf may wait on disk
	// before the process serves it: the next look (<= the probe interval),
	// start grace, the global action spacing for six services, a restart.
	rtServedDeadline = 45 * time.Second
	// rtSamplePeriod is how often availability is sampled.
	rtSamplePeriod = 500 * time.Millisecond
)

type rtFixture struct {
	*lvFixture
	state string // the controller's /state volume
}

// rtNew is lvNew plus a state volume, with both images built up front so
// no build runs inside a measured interval.
func rtNew(t *testing.T) *rtFixture {
	t.Helper()
	f := &rtFixture{lvFixture: lvNew(t)}
	f.h.ServiceImage(t)
	f.h.ControllerImage(t)
	f.state = f.h.NewVolume(t)
	return f
}

// start runs the controller on the fixture's certs dir and state volume
// with lvFastEnv, rtEnv and env (later entries win), and waits for /readyz.
func (f *rtFixture) start(t *testing.T, env ...string) {
	t.Helper()
	f.ctrl = f.h.StartController(t, ControllerOptions{
		Network: f.net, CertsVolume: f.certs, StateVolume: f.state,
		Env: mergeEnv(mergeEnv(lvFastEnv, rtEnv), env),
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("full controller log:\n%s", f.h.Logs(t, f.ctrl.ID))
		}
	})
	f.waitReady(t)
}

// waitReady waits for /readyz, re-reading the controller's address: a
// restarted container may come back with another one.
func (f *rtFixture) waitReady(t *testing.T) {
	t.Helper()
	WaitFor(t, lvDeadline, func() (bool, string) {
		ins, err := f.inspectName(f.ctrl.ID)
		if err != nil {
			return false, err.Error()
		}
		ep := ins.NetworkSettings.Networks[f.net]
		if ep == nil || ep.IPAddress == "" {
			return false, "controller has no address yet"
		}
		f.ctrl.IP = ep.IPAddress
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err := f.h.HTTPGet(ctx, "http://"+net.JoinHostPort(f.ctrl.IP, "9090")+"/readyz", nil)
		if err != nil {
			return false, "readyz: " + err.Error()
		}
		return res.Status == 200, fmt.Sprintf("readyz %d: %s", res.Status, res.Body)
	})
}

// services creates the named adaptive services and starts each once its
// bundle is on disk, as compose does with a running controller.
func (f *rtFixture) services(t *testing.T, names []string, opts ...ServiceOption) map[string]*Container {
	t.Helper()
	out := map[string]*Container{}
	for _, name := range names {
		out[name] = f.h.RunService(t, f.serviceOpts(name, append([]ServiceOption{CreateOnly()}, opts...)...)...)
	}
	for _, name := range names {
		f.startService(t, out[name])
	}
	return out
}

// waitAllMTLS waits until every service serves mTLS with the leaf on disk.
func (f *rtFixture) waitAllMTLS(t *testing.T, svcs map[string]*Container, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, func() (bool, string) {
		for name, c := range svcs {
			if ok, why := f.checkMTLS(t, c); !ok {
				return false, name + ": " + why
			}
		}
		return true, ""
	})
}

// controllerExec runs /controller args... inside the test's controller.
func (f *rtFixture) controllerExec(args ...string) (stdout, stderr string, code int, err error) {
	return f.h.ControllerExec(f.ctrl.ID, args...)
}

// rotate asks for a rollover the way an operator does:
// `docker exec <controller> /controller ca rotate`.
func (f *rtFixture) rotate(t *testing.T) {
	t.Helper()
	out, errOut, code, err := f.controllerExec("ca", "rotate")
	if err != nil || code != 0 {
		t.Fatalf("controller ca rotate: exit %d, err %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	t.Logf("controller ca rotate: %s", strings.TrimSpace(out))
}

// caStatus is `controller ca status -o json`.
func (f *rtFixture) caStatus() (rotation.Status, error) {
	var st rotation.Status
	out, errOut, code, err := f.controllerExec("ca", "status", "-o", "json")
	if err != nil {
		return st, err
	}
	if code != 0 {
		return st, fmt.Errorf("controller ca status: exit %d: %s", code, strings.TrimSpace(errOut))
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return st, fmt.Errorf("decoding controller ca status: %w: %s", err, out)
	}
	return st, nil
}

// mustCAStatus is caStatus, failing the test on error.
func (f *rtFixture) mustCAStatus(t *testing.T) rotation.Status {
	t.Helper()
	st, err := f.caStatus()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// apiPhase is summary.ca_rollover.phase of the status API.
func (f *rtFixture) apiPhase() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := f.h.HTTPGet(ctx, "http://"+net.JoinHostPort(f.ctrl.IP, "9090")+"/api/v1/status", nil)
	if err != nil {
		return "", err
	}
	var rep struct {
		Summary struct {
			CARollover *struct {
				Phase   string `json:"phase"`
				Message string `json:"message"`
			} `json:"ca_rollover"`
		} `json:"summary"`
	}
	if err := json.Unmarshal(res.Body, &rep); err != nil || res.Status != 200 {
		return "", fmt.Errorf("status API %d: %v: %.200s", res.Status, err, res.Body)
	}
	if rep.Summary.CARollover == nil {
		return "", fmt.Errorf("status API has no summary.ca_rollover")
	}
	return rep.Summary.CARollover.Phase, nil
}

// waitRolloverDone waits until the rollover is back to idle with an active
// CA other than old and nothing left to retire, and returns that status.
func (f *rtFixture) waitRolloverDone(t *testing.T, old string) rotation.Status {
	t.Helper()
	var st rotation.Status
	WaitFor(t, rtRolloverDeadline, func() (bool, string) {
		var err error
		if st, err = f.caStatus(); err != nil {
			return false, err.Error()
		}
		done := st.Phase == rotation.PhaseIdle && st.ActiveCA.Fingerprint != old && st.Retiring == 0 && st.Successor == nil
		return done, fmt.Sprintf("phase %s, active %.12s (old %.12s), retiring %d, successor %v: %s; waiting for %v",
			st.Phase, st.ActiveCA.Fingerprint, old, st.Retiring, st.Successor != nil, st.Message, st.WaitingFor)
	})
	if phase, err := f.apiPhase(); err != nil || phase != string(rotation.PhaseIdle) {
		t.Errorf("got status API summary.ca_rollover.phase %q (%v), want idle", phase, err)
	}
	return st
}

// waitSettled waits until every service runs a process that started after
// its bundle was last written (so it loaded the files now on disk) and
// serves mTLS with them. The rollover is idle as soon as the old CA is
// retired; the restarts that drop it from the processes' trust follow.
func (f *rtFixture) waitSettled(t *testing.T, svcs map[string]*Container) {
	t.Helper()
	WaitFor(t, lvDeadline, func() (bool, string) {
		for name, c := range svcs {
			gen, err := os.Stat(filepath.Join(f.certs, name, "..data"))
			if err != nil {
				return false, err.Error()
			}
			ins, err := f.inspectName(c.ID)
			if err != nil {
				return false, err.Error()
			}
			started, err := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
			if err != nil || !ins.State.Running || gen.ModTime().After(started) {
				return false, fmt.Sprintf("%s: process started %s (running %v), bundle written %s: a restart is due",
					name, ins.State.StartedAt, ins.State.Running, gen.ModTime().UTC().Format(time.RFC3339Nano))
			}
			if ok, why := f.checkMTLS(t, c); !ok {
				return false, name + ": " + why
			}
		}
		return true, ""
	})
}

// waitTrustOnly waits until service's ca.crt holds only the CA with
// fingerprint active. The rollover reports idle at the retire, and each
// service's trust bundle shrinks when the reconciler gets to it, so a
// loaded controller may still be on its way.
func (f *rtFixture) waitTrustOnly(t *testing.T, service, active string) {
	t.Helper()
	WaitFor(t, lvDeadline, func() (bool, string) {
		cas, err := rtReadCerts(filepath.Join(f.certs, service, "ca.crt"))
		if err != nil {
			return false, err.Error()
		}
		return len(cas) == 1 && rtFingerprint(cas[0]) == active, fmt.Sprintf("%s: ca.crt holds %d CAs, want only %.12s", service, len(cas), active)
	})
}

// assertOnNewCA waits for the services to settle, then checks, from the
// files and from outside, that every service trusts only the CA with
// fingerprint active and serves a leaf it issued.
func (f *rtFixture) assertOnNewCA(t *testing.T, svcs map[string]*Container, active string) {
	t.Helper()
	for name := range svcs {
		f.waitTrustOnly(t, name, active)
	}
	f.waitSettled(t, svcs)
	for name, c := range svcs {
		cas, err := rtReadCerts(filepath.Join(f.certs, name, "ca.crt"))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if len(cas) != 1 || rtFingerprint(cas[0]) != active {
			var got []string
			for _, ca := range cas {
				got = append(got, rtFingerprint(ca)[:12])
			}
			t.Errorf("%s: got trust bundle %v, want only the new CA %.12s", name, got, active)
			continue
		}
		for _, file := range []string{"tls.crt", "client.crt"} {
			leaves, err := rtReadCerts(filepath.Join(f.certs, name, file))
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			if err := leaves[0].CheckSignatureFrom(cas[0]); err != nil {
				t.Errorf("%s: got %s not signed by the new CA: %v", name, file, err)
			}
		}
		if ok, why := f.checkMTLS(t, c); !ok {
			t.Errorf("%s: got %s, want mtls with the leaf of the new CA", name, why)
		}
	}
}

// restarts counts the engine's restart events per container since.
func (f *rtFixture) restarts(t *testing.T, svcs map[string]*Container, since time.Time) map[string]int {
	t.Helper()
	out := map[string]int{}
	for name, c := range svcs {
		out[name] = f.events.count(t, c.ID, events.ActionRestart, since)
	}
	return out
}

// restartsBetween counts them in [since, until]: a measurement window
// closes before the next renewal's restart can slip into it.
func (f *rtFixture) restartsBetween(t *testing.T, svcs map[string]*Container, since, until time.Time) map[string]int {
	t.Helper()
	all := f.restarts(t, svcs, since) // also fails on a broken event stream
	f.events.mu.Lock()
	defer f.events.mu.Unlock()
	for name, c := range svcs {
		for _, m := range f.events.msgs {
			if m.Actor.ID == c.ID && m.Action == events.ActionRestart && time.Unix(0, m.TimeNano).After(until) {
				all[name]--
			}
		}
	}
	return all
}

func rtReadCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cs, err := certs.ParseCertificatesPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(cs) == 0 {
		return nil, fmt.Errorf("%s holds no certificate", path)
	}
	return cs, nil
}

func rtFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// rtAvailability samples, every rtSamplePeriod and independently of the
// controller, whether each service answers mTLS to a verifying client built
// from its current bundle, and which leaf it serves compared with the one on
// disk. It is a measurement loop, not a wait.
type rtAvailability struct {
	f    *rtFixture
	mu   sync.Mutex
	svcs map[string]*rtServiceSamples
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// rtServiceSamples is one service's record.
type rtServiceSamples struct {
	samples, failed int
	down, longest   time.Duration // total and longest time not answering mTLS
	current         time.Duration // the outage in progress
	lastErr         string
	// serials are the distinct tls.crt serials seen on disk, in order;
	// seenAt when each was first seen; servedAfter how long after that the
	// service first served it (-1: never seen served).
	serials     []string
	seenAt      []time.Time
	servedAfter []time.Duration
}

func (f *rtFixture) sampleAvailability(t *testing.T, svcs map[string]*Container) *rtAvailability {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &rtAvailability{f: f, svcs: map[string]*rtServiceSamples{}, stop: cancel}
	t.Cleanup(a.Stop)
	for name, c := range svcs {
		s := &rtServiceSamples{}
		a.svcs[name] = s
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			tick := time.NewTicker(rtSamplePeriod)
			defer tick.Stop()
			last := time.Now()
			for {
				a.sample(name, c, s, time.Since(last))
				last = time.Now()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return a
}

// Stop ends the sampling; safe to call twice.
func (a *rtAvailability) Stop() {
	a.stop()
	a.wg.Wait()
}

func (a *rtAvailability) sample(name string, c *Container, s *rtServiceSamples, elapsed time.Duration) {
	now := time.Now()
	onDisk, serial, err := rtLeafOnDisk(filepath.Join(a.f.certs, name, "tls.crt"))
	served, answerErr := a.answer(name, c)

	a.mu.Lock()
	defer a.mu.Unlock()
	if err == nil && (len(s.serials) == 0 || s.serials[len(s.serials)-1] != serial) {
		s.serials = append(s.serials, serial)
		s.seenAt = append(s.seenAt, now)
		s.servedAfter = append(s.servedAfter, -1)
	}
	s.samples++
	if answerErr != nil {
		s.failed++
		if s.samples > 1 {
			s.down += elapsed
			s.current += elapsed
			s.longest = max(s.longest, s.current)
		}
		s.lastErr = answerErr.Error()
		return
	}
	s.current = 0
	if i := len(s.serials) - 1; i >= 0 && served == onDisk && s.servedAfter[i] < 0 {
		s.servedAfter[i] = now.Sub(s.seenAt[i])
	}
}

// answer makes one mTLS request to the service with its own bundle and
// returns the served leaf's fingerprint.
func (a *rtAvailability) answer(name string, c *Container) (string, error) {
	cfg, err := a.f.clientTLS(name)
	if err != nil {
		return "", err
	}
	ins, err := a.f.inspectName(c.ID)
	if err != nil {
		return "", err
	}
	ep := ins.NetworkSettings.Networks[a.f.net]
	if ep == nil || ep.IPAddress == "" {
		return "", fmt.Errorf("no address (restarting)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := a.f.h.HTTPGet(ctx, "https://"+net.JoinHostPort(ep.IPAddress, "8443")+"/health", cfg)
	if err != nil {
		return "", err
	}
	if res.Status != 200 {
		return "", fmt.Errorf("status %d", res.Status)
	}
	return res.ServerCertSHA256(), nil
}

// snapshot returns a copy of a service's record.
func (a *rtAvailability) snapshot(name string) rtServiceSamples {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := *a.svcs[name]
	s.serials = append([]string(nil), s.serials...)
	s.seenAt = append([]time.Time(nil), s.seenAt...)
	s.servedAfter = append([]time.Duration(nil), s.servedAfter...)
	return s
}

// rtLeafOnDisk returns the fingerprint and serial of a PEM leaf.
func rtLeafOnDisk(path string) (fp, serial string, err error) {
	cs, err := rtReadCerts(path)
	if err != nil {
		return "", "", err
	}
	return rtFingerprint(cs[0]), certs.SerialString(cs[0].SerialNumber), nil
}

// rtCalls follows a worker's /bootinfo "calls" across its restarts: the
// counters live in the process, so each life (told apart by started_at) is
// kept at its last reading and the lives are summed. Calls made between a
// life's last reading and its end are missed, so OK is a lower bound; the
// failures are counted exactly from the worker's log instead (workerFailed).
type rtCalls struct {
	mu    sync.Mutex
	lives map[string]rtCallStats // started_at -> last reading
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

type rtCallStats struct {
	OK        int    `json:"ok"`
	Failed    int    `json:"failed"`
	LastError string `json:"last_error"`
}

func (f *rtFixture) followCalls(t *testing.T, worker *Container) *rtCalls {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rc := &rtCalls{lives: map[string]rtCallStats{}, stop: cancel}
	t.Cleanup(rc.Stop)
	rc.wg.Add(1)
	go func() {
		defer rc.wg.Done()
		tick := time.NewTicker(rtSamplePeriod)
		defer tick.Stop()
		for {
			if started, st, err := f.bootCalls(worker); err == nil {
				rc.mu.Lock()
				rc.lives[started] = st
				rc.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return rc
}

// Stop ends the sampling; safe to call twice.
func (rc *rtCalls) Stop() {
	rc.stop()
	rc.wg.Wait()
}

// total sums the last reading of every life.
func (rc *rtCalls) total() (ok, failed, lives int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, st := range rc.lives {
		ok += st.OK
		failed += st.Failed
	}
	return ok, failed, len(rc.lives)
}

// bootCalls reads the worker's /bootinfo over mTLS with its own bundle.
func (f *rtFixture) bootCalls(worker *Container) (string, rtCallStats, error) {
	var bi struct {
		StartedAt string      `json:"started_at"`
		Calls     rtCallStats `json:"calls"`
	}
	cfg, err := f.clientTLS(worker.Service)
	if err != nil {
		return "", bi.Calls, err
	}
	ins, err := f.inspectName(worker.ID)
	if err != nil {
		return "", bi.Calls, err
	}
	ep := ins.NetworkSettings.Networks[f.net]
	if ep == nil || ep.IPAddress == "" {
		return "", bi.Calls, fmt.Errorf("worker has no address (restarting)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := f.h.HTTPGet(ctx, "https://"+net.JoinHostPort(ep.IPAddress, "8443")+"/bootinfo", cfg)
	if err != nil {
		return "", bi.Calls, err
	}
	if err := json.Unmarshal(res.Body, &bi); err != nil || res.Status != 200 {
		return "", bi.Calls, fmt.Errorf("bootinfo %d: %v", res.Status, err)
	}
	return bi.StartedAt, bi.Calls, nil
}

// workerFailed counts the worker's "call to peer failed" log lines over all
// its lives (the engine keeps a container's log across restarts) and
// returns the distinct errors seen.
func (f *rtFixture) workerFailed(t *testing.T, worker *Container) (int, []string) {
	t.Helper()
	n, seen := 0, map[string]bool{}
	var errs []string
	for line := range strings.Lines(f.h.Logs(t, worker.ID)) {
		var l struct {
			Msg   string `json:"msg"`
			Error string `json:"error"`
			Time  string `json:"time"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "call to peer failed" {
			continue
		}
		n++
		if !seen[l.Error] {
			seen[l.Error] = true
			errs = append(errs, l.Time+" "+l.Error)
		}
	}
	return n, errs
}
