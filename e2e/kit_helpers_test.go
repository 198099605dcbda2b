//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"

	"github.com/crank-platform/crank-mtls-controller/status"
)

// Fixtures of the service kit scenarios (kit_test.go), prefixed kit. They
// run the Python kit (servicekit/python) in real containers next to the
// load-once pattern it replaces, under one controller, and measure both.

const (
	// kitCallInterval is how often a worker calls its platform, and how
	// often the test's own mTLS client samples every service.
	kitCallInterval = 200 * time.Millisecond
	// kitStartGrace is the controller's start grace in these tests. A
	// Python service needs 1-2s to listen on an idle 2-core machine and
	// more than 10s (the default) with a load average of 16; with less
	// grace than that the controller sees it down and restarts it before
	// it ever listened. Compose users get the same from a healthcheck
	// start_period (the kit's get_health_check_config() sets 40s).
	kitStartGrace = 30 * time.Second
)

// kitReloadWatch is the label a kit service carries.
var kitReloadWatch = map[string]string{"crank.security.reload": "watch"}

// kitFixture is rtFixture (a certs dir, a state volume, the engine's
// events, a controller) under a compose project named e2ekit-...
type kitFixture struct {
	*rtFixture
	project string
}

// kitNew sets up the world, with both images built up front so no build
// runs inside a measured interval.
func kitNew(t *testing.T) *kitFixture {
	t.Helper()
	lv := lvNew(t)
	lv.h.KitImage(t)
	lv.h.ControllerImage(t)
	sum := sha256.Sum256([]byte(t.Name()))
	return &kitFixture{
		rtFixture: &rtFixture{lvFixture: lv, state: lv.h.NewVolume(t)},
		project:   "e2ekit-" + lv.h.RunID + "-" + hex.EncodeToString(sum[:2]),
	}
}

// start runs the controller on the fixture's project with lvFastEnv, rtEnv,
// kitStartGrace and env (later entries win), and waits for /readyz.
func (f *kitFixture) start(t *testing.T, env ...string) {
	t.Helper()
	env = append([]string{"CRANK_START_GRACE=" + kitStartGrace.String()}, env...)
	f.ctrl = f.h.StartController(t, ControllerOptions{
		Network: f.net, CertsVolume: f.certs, StateVolume: f.state, Project: f.project,
		Env: mergeEnv(mergeEnv(lvFastEnv, rtEnv), env),
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("full controller log:\n%s", f.h.Logs(t, f.ctrl.ID))
		}
	})
	f.waitReady(t)
}

// kitService creates (CreateOnly is the caller's choice) a Python service
// of the fixture's project on its network, with the certs root at /certs.
func (f *kitFixture) kitService(t *testing.T, name string, opts ...ServiceOption) *Container {
	t.Helper()
	base := []ServiceOption{WithService(name), WithProject(f.project), WithNetwork(f.net), WithCertsMount(f.certs, "/certs")}
	return f.h.RunKitService(t, append(base, opts...)...)
}

// kitPath is one way of living with rotations, as a platform and a worker
// calling it over mTLS every kitCallInterval.
type kitPath struct {
	name             string // "kit" or "restart"
	platform, worker *Container
}

// kitStacks starts two stacks side by side: "kit" (the kit's hot reload,
// labelled reload=watch) and "restart" (certificates loaded once, so every
// rotation costs restarts, as before the kit). Each service is started
// once its bundle is on disk, as compose does with a running controller.
func (f *kitFixture) kitStacks(t *testing.T) []*kitPath {
	t.Helper()
	var paths []*kitPath
	for _, p := range []struct {
		name   string
		env    string
		labels map[string]string
	}{{"kit", "KIT_RELOAD=watch", kitReloadWatch}, {"restart", "KIT_RELOAD=off", nil}} {
		platform := p.name + "-platform"
		paths = append(paths, &kitPath{
			name:     p.name,
			platform: f.kitService(t, platform, CreateOnly(), WithEnv(p.env), WithLabels(p.labels)),
			worker: f.kitService(t, p.name+"-worker", CreateOnly(), WithEnv(p.env), WithLabels(p.labels),
				WithEnv("CALL_URL=https://"+platform+":8443/health", fmt.Sprintf("CALL_INTERVAL=%g", kitCallInterval.Seconds()))),
		})
	}
	for _, p := range paths {
		f.startService(t, p.platform)
		f.startService(t, p.worker)
	}
	svcs := kitByService(paths)
	f.waitAllMTLS(t, svcs, lvDeadline)
	for _, c := range svcs {
		f.waitControllerSettled(t, c, false)
	}
	WaitFor(t, lvDeadline, func() (bool, string) {
		for _, p := range paths {
			if c := f.calls(t, p.worker, time.Time{}, time.Now()); c.ok == 0 {
				return false, fmt.Sprintf("%s: no successful call yet (%d failed: %v)", p.worker.Service, c.failed, c.errors)
			}
		}
		return true, ""
	})
	return paths
}

func kitByService(paths []*kitPath) map[string]*Container {
	out := map[string]*Container{}
	for _, p := range paths {
		out[p.platform.Service], out[p.worker.Service] = p.platform, p.worker
	}
	return out
}

// generation is the bundle generation ..data points at, "" if none.
func (f *kitFixture) generation(service string) string {
	gen, _ := os.Readlink(filepath.Join(f.certs, service, "..data"))
	return gen
}

// kitCalls are a worker's calls in a window, from its log: one JSON line
// per call, kept by the engine across restarts. A call cut off by a restart
// logs nothing; restarts are counted separately.
type kitCalls struct {
	ok, failed int
	errors     []string // distinct, first few
}

func (f *kitFixture) calls(t *testing.T, worker *Container, since, until time.Time) kitCalls {
	t.Helper()
	var c kitCalls
	for line := range strings.Lines(f.h.Logs(t, worker.ID)) {
		var l struct {
			Msg   string  `json:"msg"`
			OK    bool    `json:"ok"`
			At    float64 `json:"at"`
			Error string  `json:"error"`
		}
		if json.Unmarshal([]byte(line), &l) != nil || l.Msg != "call" {
			continue
		}
		sec, frac := math.Modf(l.At)
		at := time.Unix(int64(sec), int64(frac*1e9))
		if at.Before(since) || at.After(until) {
			continue
		}
		if l.OK {
			c.ok++
			continue
		}
		c.failed++
		if len(c.errors) < 3 && !slices.Contains(c.errors, l.Error) {
			c.errors = append(c.errors, l.Error)
		}
	}
	return c
}

// waitCallsFlow waits until every worker has made n successful calls
// after since: whatever a rotation disturbed is over.
func (f *kitFixture) waitCallsFlow(t *testing.T, paths []*kitPath, since time.Time, n int) {
	t.Helper()
	WaitFor(t, lvDeadline, func() (bool, string) {
		for _, p := range paths {
			if c := f.calls(t, p.worker, since, time.Now()); c.ok < n {
				return false, fmt.Sprintf("%s: %d successful calls since %s, want %d", p.worker.Service, c.ok, since.Format("15:04:05.000"), n)
			}
		}
		return true, ""
	})
}

// engineCount counts the engine's action events for the container in
// [since, until]. A broken event stream fails the test.
func (f *kitFixture) engineCount(t *testing.T, c *Container, action events.Action, since, until time.Time) int {
	t.Helper()
	n := f.events.count(t, c.ID, action, since) // fails on a broken stream
	f.events.mu.Lock()
	defer f.events.mu.Unlock()
	for _, m := range f.events.msgs {
		if m.Actor.ID == c.ID && m.Action == action && time.Unix(0, m.TimeNano).After(until) {
			n--
		}
	}
	return n
}

// loadAverage is the machine's 1-minute load average, for the context of
// a figure: it is shared, and a Python start is ten times slower at 16.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}

// issuedAt is when the controller logged its first issue for service.
func (f *kitFixture) issuedAt(t *testing.T, service string) time.Time {
	t.Helper()
	for _, l := range f.logs(t) {
		if l.Service == service && strings.Contains(l.Msg, "issued bundle") {
			return l.Time
		}
	}
	return time.Time{}
}

// reloadedByItself matches the controller's line for a reload=watch
// service that showed its new bundle without a restart.
func reloadedByItself(service string, since time.Time) func(lvLog) bool {
	return func(l lvLog) bool {
		return l.Service == service && !l.Time.Before(since) &&
			strings.Contains(l.Msg, "serves its new bundle, reloaded without a restart")
	}
}

// serviceStatus is GET /api/v1/status/{service} from the controller.
func (f *kitFixture) serviceStatus(service string) (status.ServiceReport, error) {
	var rep status.ServiceReport
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := f.h.HTTPGet(ctx, "http://"+net.JoinHostPort(f.ctrl.IP, "9090")+"/api/v1/status/"+service, nil)
	if err != nil {
		return rep, err
	}
	if res.Status != 200 {
		return rep, fmt.Errorf("status API for %s: %d: %.200s", service, res.Status, res.Body)
	}
	return rep, json.Unmarshal(res.Body, &rep)
}

// waitControllerSettled waits until the controller has probed c at mtls,
// serving its bundle's certificate, with no action pending (a measurement
// that starts then sees only what the rotation does), and returns the
// controller's view of c. With afterGrace the probe must come after the
// start grace: the one that would restart a process that booted without
// its certificates or kept older ones.
func (f *kitFixture) waitControllerSettled(t *testing.T, c *Container, afterGrace bool) status.ContainerStatus {
	t.Helper()
	var graceEnd time.Time
	if afterGrace {
		graceEnd = startedAt(t, f.h.Inspect(t, c.ID)).Add(kitStartGrace)
	}
	var st status.ContainerStatus
	WaitFor(t, lvDeadline+kitStartGrace, func() (bool, string) {
		rep, err := f.serviceStatus(c.Service)
		if err != nil {
			return false, err.Error()
		}
		if len(rep.Containers) != 1 {
			return false, fmt.Sprintf("%s: %d containers in the status", c.Service, len(rep.Containers))
		}
		st = rep.Containers[0]
		want, err := f.fingerprintOnDisk(c.Service)
		if err != nil {
			return false, err.Error()
		}
		ok := st.Observed == "mtls" && st.Probe.LastAt.After(graceEnd) && !st.NeedsRestart &&
			st.Served.Fingerprint == want && st.Remediation.NextActionAt.IsZero()
		return ok, fmt.Sprintf("%s: observed %s, last probe %s (waiting for one after %s), needs restart %v, served %.12s (bundle %.12s), next action %s",
			c.Service, st.Observed, st.Probe.LastAt.Format("15:04:05.000"), graceEnd.Format("15:04:05.000"),
			st.NeedsRestart, st.Served.Fingerprint, want, st.Remediation.NextActionAt)
	})
	return st
}

// settledRestartPath reports whether a load-once service runs a process
// started after its bundle was last written, serving that bundle.
func (f *kitFixture) settledRestartPath(t *testing.T, c *Container) (bool, string) {
	t.Helper()
	gen, err := os.Stat(filepath.Join(f.certs, c.Service, "..data"))
	if err != nil {
		return false, err.Error()
	}
	ins, err := f.inspectName(c.ID)
	if err != nil {
		return false, err.Error()
	}
	started, err := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
	if err != nil || !ins.State.Running || gen.ModTime().After(started) {
		return false, fmt.Sprintf("%s: process started %s, bundle written %s: a restart is due",
			c.Service, ins.State.StartedAt, gen.ModTime().UTC().Format(time.RFC3339Nano))
	}
	return f.checkMTLS(t, c)
}
