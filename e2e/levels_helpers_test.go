//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Fixtures of the security-level scenarios (levels_test.go). Everything is
// prefixed lv so it cannot collide with the other e2e files of the package.

// lvFastEnv makes the ladder fast enough for a test: a probe every 2s, 2s
// of start grace, backoff 2s then 4s, no global spacing, a budget of 2.
var lvFastEnv = []string{
	"CRANK_LOG_FORMAT=json",
	"CRANK_PROBE_INTERVAL=2s",
	"CRANK_START_GRACE=2s",
	"CRANK_RESTART_BACKOFF=2s",
	"CRANK_ACTION_INTERVAL=0s",
	"CRANK_RESTART_BUDGET=2",
}

// Figures of lvFastEnv the assertions depend on.
const (
	lvProbeInterval = 2 * time.Second
	lvBudget        = 2
	// lvMaxBackoff is the longest wait the budget of 2 reaches: 2s after
	// the first action, 4s after the second.
	lvMaxBackoff = 4 * time.Second
	// lvDeadline bounds every wait for something that must happen.
	lvDeadline = 60 * time.Second
)

// lvFixture is one test's world: a network, a certs root, the engine's
// events for the test's scope, and (once started) a controller.
type lvFixture struct {
	h      *Harness
	net    string
	certs  string // host dir: the controller's /certs and every service's /certs
	ctrl   *Controller
	events *lvEvents
}

// lvNew sets up the world without a controller. The certs root is a host
// directory, created before anything else so that its removal runs after
// the harness has removed the containers writing into it.
func lvNew(t *testing.T) *lvFixture {
	t.Helper()
	certs := t.TempDir()
	h := H(t)
	f := &lvFixture{h: h, certs: certs}
	f.net = h.NewNetwork(t)
	f.events = lvWatchEvents(t, h)
	return f
}

// startController starts the controller with lvFastEnv plus env (later
// entries win) and waits for /readyz: subscribed to events, first list done.
func (f *lvFixture) startController(t *testing.T, env ...string) {
	t.Helper()
	f.ctrl = f.h.StartController(t, ControllerOptions{
		Network: f.net, CertsVolume: f.certs,
		Env: mergeEnv(lvFastEnv, env),
	})
	t.Cleanup(func() { // before the harness sweep removes it
		if t.Failed() {
			t.Logf("full controller log:\n%s", f.h.Logs(t, f.ctrl.ID))
		}
	})
	url := "http://" + f.ctrl.IP + ":9090/readyz"
	WaitFor(t, lvDeadline, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err := f.h.HTTPGet(ctx, url, nil)
		if err != nil {
			return false, "readyz: " + err.Error() + "\n" + f.logTail(t)
		}
		return res.Status == 200, fmt.Sprintf("readyz %d: %s", res.Status, res.Body)
	})
}

// serviceOpts are the options every service of these tests shares: a compose
// service of the test's project, on the controller's network, with the
// certs root mounted where the testservice looks (/certs/<service>).
func (f *lvFixture) serviceOpts(name string, opts ...ServiceOption) []ServiceOption {
	return append([]ServiceOption{WithService(name), WithNetwork(f.net), WithCertsMount(f.certs, "/certs")}, opts...)
}

// startService does what `docker compose up` does with a running
// controller: create, let the controller issue the bundle on the create
// event, then start, so the process finds its certificates at first boot.
// Waiting for the files keeps the scenarios deterministic; without it the
// start can race the bundle write and cost one extra (legitimate) restart.
func (f *lvFixture) startService(t *testing.T, c *Container) {
	t.Helper()
	WaitFor(t, lvDeadline, func() (bool, string) {
		if _, err := f.fingerprintOnDisk(c.Service); err != nil {
			return false, err.Error()
		}
		_, err := os.Stat(filepath.Join(f.certs, c.Service, "ca.crt"))
		return err == nil, fmt.Sprintf("ca.crt: %v", err)
	})
	f.h.Start(t, c)
}

// fingerprintOnDisk is the hex SHA-256 of the service's visible tls.crt.
func (f *lvFixture) fingerprintOnDisk(service string) (string, error) {
	data, err := os.ReadFile(filepath.Join(f.certs, service, "tls.crt"))
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s/tls.crt holds no PEM certificate", service)
	}
	if _, err := x509.ParseCertificate(block.Bytes); err != nil {
		return "", fmt.Errorf("%s/tls.crt: %w", service, err)
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:]), nil
}

// clientTLS is a verifying mTLS client built from the service's own bundle:
// its client certificate, its ca.crt, and the service name as ServerName.
func (f *lvFixture) clientTLS(service string) (*tls.Config, error) {
	dir := filepath.Join(f.certs, service)
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key"))
	if err != nil {
		return nil, fmt.Errorf("loading client cert of %s: %w", service, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", service)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: service}, nil
}

// checkMTLS verifies from outside, independently of the controller, that c
// serves mTLS: a verifying client with the bundle's client certificate gets
// 200 and the certificate now on disk; the same client without a
// certificate is refused. It returns a status for WaitFor.
func (f *lvFixture) checkMTLS(t *testing.T, c *Container) (bool, string) {
	t.Helper()
	cfg, err := f.clientTLS(c.Service)
	if err != nil {
		return false, err.Error()
	}
	want, err := f.fingerprintOnDisk(c.Service)
	if err != nil {
		return false, err.Error()
	}
	ins, err := f.inspectName(c.ID)
	if err != nil {
		return false, err.Error()
	}
	ep := ins.NetworkSettings.Networks[f.net]
	if ep == nil || ep.IPAddress == "" {
		return false, "no address on " + f.net + " (restarting?)"
	}
	url := "https://" + ep.IPAddress + ":8443/health"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := f.h.HTTPGet(ctx, url, cfg)
	if err != nil {
		return false, "with client cert: " + err.Error()
	}
	if res.Status != 200 {
		return false, fmt.Sprintf("with client cert: got status %d, want 200", res.Status)
	}
	if got := res.ServerCertSHA256(); got != want {
		return false, fmt.Sprintf("got served cert %.16s, want the one on disk %.16s", got, want)
	}
	anon := cfg.Clone()
	anon.Certificates = nil
	if res, err := f.h.HTTPGet(ctx, url, anon); err == nil {
		return false, fmt.Sprintf("without client cert: got status %d, want the handshake refused", res.Status)
	}
	return true, "mtls, serving " + want[:16]
}

// lvLog is one JSON log record of the controller.
type lvLog struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	Msg       string    `json:"msg"`
	Service   string    `json:"service"`
	Container string    `json:"container"`
	Observed  string    `json:"observed"`
	Desired   string    `json:"desired"`
	Action    string    `json:"action"`
	Reason    string    `json:"reason"`
	Findings  []string  `json:"findings"`
}

func (l lvLog) String() string {
	return fmt.Sprintf("%s %s %q", l.Time.Format("15:04:05.000"), l.Level, l.Msg)
}

// logs returns the controller's JSON records; other lines are skipped.
func (f *lvFixture) logs(t *testing.T) []lvLog {
	t.Helper()
	var out []lvLog
	sc := bufio.NewScanner(strings.NewReader(f.h.Logs(t, f.ctrl.ID)))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var l lvLog
		if err := json.Unmarshal(sc.Bytes(), &l); err == nil && l.Msg != "" {
			out = append(out, l)
		}
	}
	return out
}

// logTail is the last records, for failure messages.
func (f *lvFixture) logTail(t *testing.T) string {
	t.Helper()
	if f.ctrl == nil {
		return ""
	}
	ls := f.logs(t)
	ls = ls[max(0, len(ls)-20):]
	var b strings.Builder
	b.WriteString("controller log tail:")
	for _, l := range ls {
		b.WriteString("\n  " + l.String())
	}
	return b.String()
}

// findLogs returns every record matching pred.
func (f *lvFixture) findLogs(t *testing.T, pred func(lvLog) bool) []lvLog {
	t.Helper()
	var out []lvLog
	for _, l := range f.logs(t) {
		if pred(l) {
			out = append(out, l)
		}
	}
	return out
}

// waitLog waits for the first record matching pred and returns it.
func (f *lvFixture) waitLog(t *testing.T, what string, pred func(lvLog) bool) lvLog {
	t.Helper()
	var got lvLog
	WaitFor(t, lvDeadline, func() (bool, string) {
		if ls := f.findLogs(t, pred); len(ls) > 0 {
			got = ls[0]
			return true, ""
		}
		return false, "no log line: " + what + "\n" + f.logTail(t)
	})
	return got
}

// levelChange matches the one line per level change, for service, to level.
func levelChange(service, to string) func(lvLog) bool {
	return func(l lvLog) bool {
		return l.Service == service && l.Observed == to && strings.Contains(l.Msg, "security level") &&
			strings.Contains(l.Msg, "-> "+to+" ")
	}
}

// degraded matches the line that reports service degraded.
func degraded(service string) func(lvLog) bool {
	return func(l lvLog) bool {
		return l.Service == service && strings.HasPrefix(l.Msg, service+": degraded")
	}
}

// metric reads one series from the controller's /metrics, e.g.
// `crank_security_remediations_total{action="restart",result="ok"}`.
func (f *lvFixture) metric(series string) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := f.h.HTTPGet(ctx, f.ctrl.MetricsURL(), nil)
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(res.Body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("series %s not in /metrics", series)
}

// remediations is the series of crank_security_remediations_total.
func remediations(action, result string) string {
	return fmt.Sprintf(`crank_security_remediations_total{action=%q,result=%q}`, action, result)
}

// waitMetric waits until series equals want; a counter that is behind the
// engine's events by a moment is fine, one that disagrees is not.
func (f *lvFixture) waitMetric(t *testing.T, series string, want float64) {
	t.Helper()
	WaitFor(t, 15*time.Second, func() (bool, string) {
		v, err := f.metric(series)
		if err != nil {
			return false, err.Error()
		}
		return v == want, fmt.Sprintf("got %s = %v, want %v", series, v, want)
	})
}

// lvEvents records the engine's container events for one test's scope, as
// they happen: the engine keeps only its last 256 events, too few to query
// afterwards while other tests run.
type lvEvents struct {
	mu   sync.Mutex
	msgs []events.Message
	err  error
}

func lvWatchEvents(t *testing.T, h *Harness) *lvEvents {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &lvEvents{}
	// Since replays what happened between this call and the subscription
	// taking effect, so nothing of the test can slip through.
	msgs, errs := h.Docker.Events(ctx, events.ListOptions{
		Since: strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10),
		Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)),
			filters.Arg("label", LabelScope+"="+h.Project(t))),
	})
	go func() {
		for {
			select {
			case m := <-msgs:
				e.mu.Lock()
				e.msgs = append(e.msgs, m)
				e.mu.Unlock()
			case err := <-errs:
				if ctx.Err() == nil {
					e.mu.Lock()
					e.err = err
					e.mu.Unlock()
				}
				return
			}
		}
	}()
	return e
}

// count returns how many events of action the engine reported for the
// container id at or after since. A broken event stream fails the test: a
// count of zero must mean nothing happened, not that we stopped listening.
func (e *lvEvents) count(t *testing.T, id string, action events.Action, since time.Time) int {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil {
		t.Fatalf("engine event stream failed: %v", e.err)
	}
	n := 0
	for _, m := range e.msgs {
		if m.Actor.ID == id && m.Action == action && !time.Unix(0, m.TimeNano).Before(since) {
			n++
		}
	}
	return n
}

// summary lists the recorded actions for id, for failure messages.
func (e *lvEvents) summary(id string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var s []string
	for _, m := range e.msgs {
		if m.Actor.ID == id {
			s = append(s, time.Unix(0, m.TimeNano).Format("15:04:05.000")+" "+string(m.Action))
		}
	}
	return strings.Join(s, ", ")
}

// lvHold is an observation window: cond must stay true for all of d. It is
// for asserting that something does NOT happen; never use it to wait.
func lvHold(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(d)
	for {
		ok, status := cond()
		if !ok {
			t.Fatalf("%s: broken within the %s window: %s", what, d, status)
		}
		if !time.Now().Before(end) {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("%s: test ended during the window", what)
		case <-time.After(min(250*time.Millisecond, time.Until(end))):
		}
	}
}

// inspectName inspects by name or ID, returning not-found as an error
// rather than failing: during a relabel the name briefly moves.
func (f *lvFixture) inspectName(name string) (container.InspectResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	return f.h.Docker.ContainerInspect(ctx, name)
}

// startedAt parses an inspect's State.StartedAt.
func startedAt(t *testing.T, ins container.InspectResponse) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, ins.State.StartedAt)
	if err != nil {
		t.Fatalf("parsing StartedAt %q of %s: %v", ins.State.StartedAt, ins.Name, err)
	}
	return at
}

// removeVolumeAfterSweep removes a volume the harness does not know about
// (an anonymous one that a recreate turned into a mount by name). Call it
// before anything registers the harness sweep, so it runs after it.
func removeVolumeAfterSweep(t *testing.T, h *Harness, name *string) {
	t.Cleanup(func() {
		if *name == "" {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
		defer cancel()
		if err := h.Docker.VolumeRemove(ctx, *name, true); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing volume %s: %v", *name, err)
		}
	})
}
