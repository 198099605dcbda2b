//go:build e2e

package e2e

import (
	"net"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/go-connections/nat"
)

// The shipped alert rules (deploy/prometheus/alerts.yaml) in a real
// Prometheus: Debian's binary on the host, with a temporary config and data
// directory, scraping a controller in production through its port
// published on 127.0.0.1. The scrape config sets the job and no other
// label: the rules take the environment from the controller's
// crank_security_info. Every rule's `for:` is cut to promFor in the test's
// copy, so an alert fires in seconds; the expressions are the shipped ones.
//
// Run it alone with: go test -tags e2e -count=1 -run TestPrometheus -v ./e2e/

const (
	// promJob is the job alerts.yaml expects of the scrape configuration.
	promJob = "crank-mtls-controller"
	promFor = "2s"
	// promInterval is the scrape and evaluation interval.
	promInterval = time.Second
)

// A healthy service and a plain-only one under a production controller:
// Prometheus loads every rule, each evaluates without error once the
// series it reads exist, the drift alert fires for the plain-only
// container and never for the healthy one, the degraded alert follows once
// the ladder has spent its budget, and the rules meant for other
// environments or states stay silent.
func TestPrometheusRulesEvaluateAndDriftFires(t *testing.T) {
	t.Parallel()
	certs := t.TempDir() // first: removed after the containers writing into it
	h := H(t)
	project := tnProject(t, h, "e2eprom")
	netName := tnNetwork(t, h, project+"-net")
	f, metricsAddr := promStartController(t, h, project, netName, certs)

	shop := h.RunService(t, f.serviceOpts("shop", WithProject(project), CreateOnly())...)
	f.startService(t, shop)
	WaitFor(t, lvDeadline, func() (bool, string) { return f.checkMTLS(t, shop) })

	rules := promRulesForTest(t, h)
	called := time.Now()
	prom := promStart(t, metricsAddr, rules.text)
	t.Logf("MEASURE: prometheus: start -> ready = %s", time.Since(called).Round(time.Millisecond))

	legacy := h.RunService(t, f.serviceOpts("legacy", WithProject(project), WithMode("plain-only"), CreateOnly())...)
	f.startService(t, legacy)
	legacyStarted := time.Now()

	firing := prom.waitAlert(t, "CrankSecurityDriftInProduction", map[string]string{"service": "legacy"}, "firing")
	seen := time.Now()
	t.Logf("MEASURE: prometheus: plain-only service started -> CrankSecurityDriftInProduction firing = %s, of which pending = %s (for: %s, intervals %s)",
		seen.Sub(legacyStarted).Round(time.Millisecond), seen.Sub(firing.ActiveAt).Round(time.Millisecond), promFor, promInterval)
	wantLabels := map[string]string{"alertname": "CrankSecurityDriftInProduction", "severity": "critical", "job": promJob,
		"instance": metricsAddr, "service": "legacy", "container": legacy.Name}
	for k, v := range wantLabels {
		if got := firing.Labels[k]; got != v {
			t.Errorf("drift alert label %s: got %q, want %q", k, got, v)
		}
	}
	if got, want := firing.Annotations["summary"], legacy.Name+" (legacy) is below its security floor in production"; got != want {
		t.Errorf("drift alert summary: got %q, want %q", got, want)
	}

	// The ladder restarts it lvBudget times, then gives up: degraded.
	degraded := prom.waitAlert(t, "CrankSecurityDegraded", map[string]string{"service": "legacy"}, "firing")
	t.Logf("MEASURE: prometheus: plain-only service started -> CrankSecurityDegraded firing = %s",
		time.Since(legacyStarted).Round(time.Millisecond))
	if got, want := degraded.Labels["container"], legacy.Name; got != want {
		t.Errorf("degraded alert container: got %q, want %q", got, want)
	}

	prom.checkEveryRule(t, rules.names)

	// ALERTS holds every pending or firing sample since Prometheus started.
	for expr, why := range map[string]string{
		`ALERTS{alertname="CrankSecurityDriftInProduction",service="shop"}[10m]`: "drift alert samples for the healthy service shop",
		`ALERTS{alertname="CrankSecurityDegraded",service="shop"}[10m]`:          "degraded alert samples for the healthy service shop",
		// legacy is below its floor too, but under a production controller.
		`ALERTS{alertname="CrankSecurityBelowFloor"}[10m]`:            "below-floor alert samples under a production controller",
		`ALERTS{alertname="CrankDockerEventStreamDisconnected"}[10m]`: "event stream alert samples with the controller ready",
	} {
		if got := prom.query(t, expr); len(got) != 0 {
			t.Errorf("got %s %v, want none", why, got)
		}
	}
	firingNow := []string{}
	for _, s := range prom.query(t, `ALERTS{alertstate="firing"}`) {
		firingNow = append(firingNow, s.Metric["alertname"]+"{"+s.Metric["service"]+"}")
	}
	t.Logf("firing now (every for: cut to %s): %v", promFor, firingNow)
}

// promStartController runs the controller of project in production with
// lvFastEnv, its metrics port published on 127.0.0.1 for a Prometheus on
// the host, and waits for /readyz. It returns the levels fixture and the
// published address.
func promStartController(t *testing.T, h *Harness, project, netName, certs string) (*lvFixture, string) {
	t.Helper()
	publish := func(_ *container.Config, hc *container.HostConfig) {
		hc.PortBindings = nat.PortMap{"9090/tcp": {{HostIP: "127.0.0.1"}}} // an ephemeral port
	}
	state := tnVolume(t, h, project+"-state")
	s := &serviceSpec{image: h.ControllerImage(t), project: project, name: project + "-controller", role: "controller",
		env:      mergeEnv(lvFastEnv, []string{"CRANK_ENVIRONMENT=production"}),
		labels:   map[string]string{LabelComposeProject: project},
		networks: []netAttach{{name: netName}},
		mounts: []mount.Mount{
			{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"},
			{Type: mount.TypeBind, Source: certs, Target: "/certs"},
			{Type: mount.TypeVolume, Source: state, Target: "/state"},
		},
		edits: []func(*container.Config, *container.HostConfig){publish},
	}
	f := &lvFixture{h: h, net: netName, certs: certs}
	f.ctrl = &Controller{Container: h.create(t, s), CertsVolume: certs, StateVolume: state}
	t.Cleanup(func() { // before the harness sweep removes it
		if t.Failed() {
			t.Logf("full controller log:\n%s", h.Logs(t, f.ctrl.ID))
		}
	})
	WaitFor(t, lvDeadline, func() (bool, string) {
		ok, status := tnReady(h, f.ctrl)
		return ok, status + "\n" + f.logTail(t)
	})
	bindings := h.Inspect(t, f.ctrl.ID).NetworkSettings.Ports["9090/tcp"]
	if len(bindings) == 0 || bindings[0].HostPort == "" {
		t.Fatalf("got port bindings %v for 9090/tcp, want one on 127.0.0.1", bindings)
	}
	return f, net.JoinHostPort("127.0.0.1", bindings[0].HostPort)
}

// promRules is the test's copy of the shipped rules.
type promRules struct {
	text  string
	names []string // every alert, in file order
}

var (
	promForLine   = regexp.MustCompile(`(?m)^(\s+for:\s*)\S+\s*$`)
	promAlertLine = regexp.MustCompile(`(?m)^\s*- alert:\s*(\S+)\s*$`)
)

// promRulesForTest reads alerts.yaml and cuts every `for:` to promFor.
func promRulesForTest(t *testing.T, h *Harness) promRules {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(h.root, "deploy", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatalf("reading the shipped rules: %v", err)
	}
	var r promRules
	for _, m := range promAlertLine.FindAllStringSubmatch(string(data), -1) {
		r.names = append(r.names, m[1])
	}
	if len(r.names) == 0 {
		t.Fatal("got no `- alert:` lines in alerts.yaml, want its rules")
	}
	r.text = promForLine.ReplaceAllString(string(data), "${1}"+promFor)
	return r
}
