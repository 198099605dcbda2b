//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

// Never fight the operator. A service that drains closes its listeners on
// SIGTERM and exits only opDrain later, as real servers do; every probe in
// that window sees `down` while the container is still running. A stop the
// controller did not cause must win over any remediation: the container
// stays stopped (or removed), compose can remove everything, and the
// controller logs that it stood aside. The drain makes this deterministic:
// with a probe every lvProbeInterval, a dozen probes see `down` during it.
//
// Run them alone with: go test -tags e2e ./e2e -run TestOperatorStop -v

// opDrain is the service's DRAIN_ON_SIGTERM; opStopTimeout is the grace
// the operator gives it, longer than the drain, so it exits by itself.
const (
	opDrain       = 25 * time.Second
	opStopTimeout = 40 * time.Second
)

// `docker stop -t 40` of a draining mTLS service.
func TestOperatorStopDockerStopOfADrainingServiceStaysStopped(t *testing.T) {
	t.Parallel()
	certs := t.TempDir()
	h := H(t)
	project := tnProject(t, h, "e2eopstop")
	netName := tnNetwork(t, h, project+"-net")
	f := tnStartController(t, h, project, netName, certs, "CRANK_MODE=enforce")

	opts := func(service string, more ...ServiceOption) []ServiceOption {
		return append([]ServiceOption{WithService(service), WithProject(project), WithNetwork(netName),
			WithCertsMount(certs, "/certs"), CreateOnly()}, more...)
	}
	svc := h.RunService(t, opts("drain", WithEnv("DRAIN_ON_SIGTERM="+opDrain.String()))...)
	// The bystander's probes show the controller still looking once the
	// drain service is gone.
	bystander := h.RunService(t, opts("bystander")...)
	f.startService(t, svc)
	f.startService(t, bystander)
	f.waitLog(t, "drain reaches mtls", levelChange("drain", "mtls"))
	WaitFor(t, 30*time.Second, func() (bool, string) { return f.checkMTLS(t, svc) })
	tnWaitProbed(t, f, svc.ID, startedAt(t, h.Inspect(t, svc.ID)), 2)

	stopBegan := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), opStopTimeout+30*time.Second)
	defer cancel()
	timeout := int(opStopTimeout / time.Second)
	if err := h.Docker.ContainerStop(ctx, svc.ID, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatalf("docker stop -t %d %s: %v", timeout, svc.Name, err)
	}
	stopReturned := time.Now()
	took := stopReturned.Sub(stopBegan)
	t.Logf("MEASURE: operator-stop: docker stop -t %d took %s", timeout, took.Round(time.Millisecond))
	if took < opDrain-time.Second {
		t.Errorf("got docker stop done in %s, want at least the drain (%s): the service exits only then, unless something else killed it",
			took, opDrain)
	}

	// The controller has looked since: the bystander was probed twice after
	// the longest backoff of the ladder had passed.
	tnWaitProbed(t, f, bystander.ID, stopReturned.Add(lvMaxBackoff), 2)

	ins := h.Inspect(t, svc.ID)
	if ins.State.Running || ins.State.Status != "exited" {
		t.Errorf("got %s %s (running %v) after docker stop, want exited", svc.Name, ins.State.Status, ins.State.Running)
	}
	if n := f.events.count(t, svc.ID, events.ActionKill, stopBegan); n == 0 {
		t.Fatalf("got no kill event for %s after the stop began, want the recorder to have seen the stop: %s", svc.Name, f.events.summary(svc.ID))
	}
	for _, a := range []events.Action{events.ActionStart, events.ActionRestart} {
		if n := f.events.count(t, svc.ID, a, stopBegan); n != 0 {
			t.Errorf("got %d %s events for %s after the operator's stop began, want none: %s", n, a, svc.Name, f.events.summary(svc.ID))
		}
	}
	window, err := tnEventsBetween(h, svc.ID, stopBegan, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("engine events of %s since the stop began: %v", svc.Name, tnActions(window))
	for _, m := range window {
		if m.Action == events.ActionStart || m.Action == events.ActionRestart {
			t.Errorf("got engine event %s at %s for %s after the operator's stop began, want none: %v",
				m.Action, time.Unix(0, m.TimeNano).Format("15:04:05.000"), svc.Name, tnActions(window))
		}
	}
	if v, err := f.metric(remediations("restart", "ok")); err != nil || v != 0 {
		t.Errorf("got restart ok = %v (%v), want 0", v, err)
	}
	aside := f.findLogs(t, func(l lvLog) bool { return opStoodAside(l, "drain") })
	if len(aside) == 0 {
		t.Errorf("got no log line saying the controller stood aside for drain, want one\n%s", f.logTail(t))
	}
	for _, l := range aside {
		t.Logf("stood aside: %s", l)
	}
}

// `docker-compose down -v` of a stack with the controller and a draining
// mTLS service that depends on it, so compose stops the service first and
// the controller watches the whole drain.
func TestOperatorStopComposeDownOfADrainingServiceLeavesNothing(t *testing.T) {
	t.Parallel()
	h := H(t)
	project := tnProject(t, h, "e2eopstop")
	file := filepath.Join(t.TempDir(), "compose.yaml")
	opWriteCompose(t, h, file)
	recorder := lvWatchEvents(t, h)
	compose := func(budget time.Duration, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		out, err := exec.CommandContext(ctx, "docker-compose", append([]string{"-p", project, "-f", file}, args...)...).CombinedOutput()
		return string(out), err
	}
	// Runs before the harness sweep; a no-op once the test's own down worked.
	t.Cleanup(func() {
		if out, err := compose(2*time.Minute, "down", "-v", "--remove-orphans", "-t", "1"); err != nil {
			t.Logf("cleanup: docker-compose down: %v\n%s", err, out)
		}
	})
	if out, err := compose(3*time.Minute, "up", "-d"); err != nil {
		t.Fatalf("docker-compose up: %v\n%s", err, out)
	}
	ctrlID := demoContainer(t, h, project, "controller")
	drainID := demoContainer(t, h, project, "drain")
	ctrlLog := tnFollowLogs(t, h, ctrlID)
	netName := project + "_default"
	tnAllowNetwork(t, h, netName)
	f := &lvFixture{h: h, net: netName, events: recorder,
		ctrl: &Controller{Container: &Container{ID: ctrlID, IP: h.IP(t, ctrlID, netName)}}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("full controller log:\n%s", ctrlLog.String())
		}
	})

	var mtlsAt time.Time
	WaitFor(t, lvDeadline, func() (bool, string) {
		for _, l := range tnLogs(ctrlLog.String()) {
			if levelChange("drain", "mtls")(l) {
				mtlsAt = l.Time
				return true, ""
			}
		}
		return false, "the controller has not seen drain at mtls yet"
	})
	tnWaitProbed(t, f, drainID, mtlsAt, 2)

	downBegan := time.Now()
	out, err := compose(3*time.Minute, "down", "-v")
	took := time.Since(downBegan)
	t.Logf("MEASURE: operator-stop: docker-compose down -v took %s", took.Round(time.Millisecond))
	if err != nil {
		t.Errorf("got docker-compose down -v failing (%v), want it to complete:\n%s", err, out)
	}
	if took < opDrain-time.Second {
		t.Errorf("got docker-compose down done in %s, want at least the drain (%s): the service exits only then, unless something else killed it",
			took, opDrain)
	}
	if left := opLeftovers(t, h, project); len(left) > 0 {
		t.Errorf("got %d resources of project %s left after down, want none:\n  %s", len(left), project, strings.Join(left, "\n  "))
	}

	if !ctrlLog.Wait(30 * time.Second) {
		t.Errorf("the controller's output did not end after down, want it removed")
	}
	if n := recorder.count(t, drainID, events.ActionKill, downBegan); n == 0 {
		t.Fatalf("got no kill event for drain after down began, want the recorder to have seen the stop: %s", recorder.summary(drainID))
	}
	for _, a := range []events.Action{events.ActionStart, events.ActionRestart} {
		if n := recorder.count(t, drainID, a, downBegan); n != 0 {
			t.Errorf("got %d %s events for drain after down began, want none: %s", n, a, recorder.summary(drainID))
		}
	}
	window, err := tnEventsBetween(h, drainID, downBegan, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("engine events of drain since down began: %v", tnActions(window))
	var aside []lvLog
	for _, l := range tnLogs(ctrlLog.String()) {
		if opStoodAside(l, "drain") {
			aside = append(aside, l)
		}
	}
	if len(aside) == 0 {
		t.Errorf("got no log line saying the controller stood aside for drain, want one")
	}
	for _, l := range aside {
		t.Logf("stood aside: %s", l)
	}
}

// opStoodAside matches the controller's line that it stood aside for service.
func opStoodAside(l lvLog, service string) bool {
	return strings.Contains(l.Msg, "stood aside") && (l.Service == service || strings.Contains(l.Msg, service))
}

// opWriteCompose writes the stack: the controller (healthy once ready) and
// a draining mTLS service that depends on it. Images are referenced by the
// harness's IDs, so compose never pulls and a concurrent re-tag cannot swap
// them. Every container, network and volume carries the harness's labels,
// so the sweep removes them even if compose cannot. JSON is YAML.
func opWriteCompose(t *testing.T, h *Harness, file string) {
	t.Helper()
	env := func(kv []string) map[string]string {
		m := map[string]string{}
		for _, e := range kv {
			k, v, _ := strings.Cut(e, "=")
			m[k] = v
		}
		return m
	}
	stack := map[string]any{
		"services": map[string]any{
			"controller": map[string]any{
				"image":       h.ControllerImage(t),
				"environment": env(mergeEnv(lvFastEnv, []string{"CRANK_MODE=enforce"})),
				"volumes":     []string{"/var/run/docker.sock:/var/run/docker.sock", "state:/state", "certs:/certs"},
				"labels":      h.labels(t, "controller"),
				"healthcheck": map[string]any{
					"test": []string{"CMD", "/controller", "healthcheck"}, "interval": "1s", "timeout": "3s", "retries": 60,
				},
			},
			"drain": map[string]any{
				"image":             h.ServiceImage(t),
				"environment":       map[string]string{"SERVICE_NAME": "drain", "DRAIN_ON_SIGTERM": opDrain.String()},
				"volumes":           []string{"certs:/certs:ro"},
				"labels":            h.labels(t, "service"),
				"stop_grace_period": opStopTimeout.String(),
				"depends_on":        map[string]any{"controller": map[string]string{"condition": "service_healthy"}},
			},
		},
		"networks": map[string]any{"default": map[string]any{"labels": h.labels(t, "network")}},
		"volumes": map[string]any{
			"certs": map[string]any{"labels": h.labels(t, "volume")},
			"state": map[string]any{"labels": h.labels(t, "volume")},
		},
	}
	data, err := json.MarshalIndent(stack, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// opLeftovers lists every container, network and volume that still
// carries the compose project's label.
func opLeftovers(t *testing.T, h *Harness, project string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", LabelComposeProject+"="+project))
	var left []string
	cs, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("listing containers: %v", err)
	}
	for _, c := range cs {
		left = append(left, fmt.Sprintf("container %s (%s)", strings.Join(c.Names, ","), c.State))
	}
	ns, err := h.Docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatalf("listing networks: %v", err)
	}
	for _, n := range ns {
		left = append(left, "network "+n.Name)
	}
	vs, err := h.Docker.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatalf("listing volumes: %v", err)
	}
	for _, v := range vs.Volumes {
		left = append(left, "volume "+v.Name)
	}
	return left
}
