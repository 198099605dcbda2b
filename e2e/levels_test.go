//go:build e2e

package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
)

// The real-engine scenarios of the security-level issue: probe, compare with
// the desired level, walk the remediation ladder (restart within a budget
// and backoff, relabel, report), and never loop. The controller runs in a
// container with lvFastEnv; restarts are counted from the engine's events,
// never from the controller's own word, and cross-checked with /metrics.
// Figures worth tracking are logged with the prefix "MEASURE:".
//
// Run them alone with: go test -tags e2e ./e2e -run TestLevels -v

// An adaptive service that booted with no certificates (no controller yet)
// serves plain HTTP; once the controller exists it must reach mtls with at
// most one restart: the bundle is issued, the process is stale, one restart
// and it boots with the full bundle.
func TestLevelsAdaptiveWithoutCertsReachesMTLS(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	h := f.h
	svc := h.RunService(t, f.serviceOpts("api")...)

	WaitFor(t, lvDeadline, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err := h.HTTPGet(ctx, svc.HTTPURL("/bootinfo"), nil)
		if err != nil {
			return false, err.Error()
		}
		var bi struct {
			CertsAtBoot bool `json:"certs_at_boot"`
		}
		if err := json.Unmarshal(res.Body, &bi); err != nil || res.Status != 200 {
			return false, fmt.Sprintf("status %d: %s", res.Status, res.Body)
		}
		if bi.CertsAtBoot {
			t.Fatalf("got certs_at_boot true, want the service to have booted with none")
		}
		return true, ""
	})
	svcStart := startedAt(t, h.Inspect(t, svc.ID))

	called := time.Now()
	f.startController(t)
	ctrlStart := startedAt(t, h.Inspect(t, f.ctrl.ID))
	line := f.waitLog(t, "api reaches mtls", levelChange("api", "mtls"))
	seen := time.Since(called)
	t.Logf("level change: %s", line)
	t.Logf("MEASURE: adaptive-no-certs: controller container start -> observed mtls (log time) = %s",
		line.Time.Sub(ctrlStart).Round(time.Millisecond))
	t.Logf("MEASURE: adaptive-no-certs: service start (plain boot) -> observed mtls (log time) = %s",
		line.Time.Sub(svcStart).Round(time.Millisecond))
	t.Logf("MEASURE: adaptive-no-certs: StartController call -> mtls line seen by the test = %s", seen.Round(time.Millisecond))

	WaitFor(t, 30*time.Second, func() (bool, string) { return f.checkMTLS(t, svc) })

	restarts := f.events.count(t, svc.ID, events.ActionRestart, ctrlStart)
	t.Logf("MEASURE: adaptive-no-certs: restarts by the engine's events = %d", restarts)
	if restarts > 1 {
		t.Errorf("got %d restarts, want at most 1; events: %s", restarts, f.events.summary(svc.ID))
	}
	f.waitMetric(t, remediations("restart", "ok"), float64(restarts))
}

// A theater service (TLS that accepts any client) in production: the
// client-auth-not-enforced finding is drift; the controller restarts it
// within its budget, then reports it degraded and stops there.
func TestLevelsTheaterInProductionDegradesWithinBudget(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	f.startController(t, "CRANK_ENVIRONMENT=production")
	svc := f.h.RunService(t, f.serviceOpts("api", WithMode("theater"), CreateOnly())...)
	f.startService(t, svc)
	started := startedAt(t, f.h.Inspect(t, svc.ID))

	drift := f.waitLog(t, "api observed at tls", levelChange("api", "tls"))
	if !slices.Contains(drift.Findings, "client-auth-not-enforced") || drift.Level != "ERROR" {
		t.Errorf("got level change %s with findings %v, want ERROR with client-auth-not-enforced", drift, drift.Findings)
	}
	line := f.waitLog(t, "api degraded", degraded("api"))
	t.Logf("degraded: %s", line)
	t.Logf("MEASURE: theater-production: service start -> degraded (log time) = %s", line.Time.Sub(started).Round(time.Millisecond))
	for _, want := range []string{"restart budget (2) spent", "client-auth-not-enforced"} {
		if !strings.Contains(line.Msg, want) {
			t.Errorf("got degraded line %q, want it to contain %q", line.Msg, want)
		}
	}
	if line.Level != "ERROR" {
		t.Errorf("got degraded at %s, want ERROR (below the production floor)", line.Level)
	}
	f.assertBudgetSpentAndNoLoop(t, svc, started)
}

// A plain-only service in development is above (at) the development floor:
// after its budget of restarts it is accepted as degraded with a WARN, and
// never restarted again.
func TestLevelsPlainOnlyInDevelopmentIsAcceptedDegraded(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	f.startController(t, "CRANK_ENVIRONMENT=development")
	svc := f.h.RunService(t, f.serviceOpts("api", WithMode("plain-only"), CreateOnly())...)
	f.startService(t, svc)
	started := startedAt(t, f.h.Inspect(t, svc.ID))

	line := f.waitLog(t, "api degraded", degraded("api"))
	t.Logf("degraded: %s", line)
	t.Logf("MEASURE: plain-only-development: service start -> degraded (log time) = %s", line.Time.Sub(started).Round(time.Millisecond))
	if line.Level != "WARN" || !strings.Contains(line.Msg, "accepted") || line.Observed != "plain" {
		t.Errorf("got %s (observed %q), want a WARN that plain is accepted", line, line.Observed)
	}
	if errs := f.findLogs(t, func(l lvLog) bool { return l.Service == "api" && l.Level == "ERROR" }); len(errs) > 0 {
		t.Errorf("got ERROR lines for a service above the development floor, want none: %v", errs)
	}
	f.assertBudgetSpentAndNoLoop(t, svc, started)
}

// assertBudgetSpentAndNoLoop checks, once degraded has been logged, that
// the engine saw exactly the budget of restarts, that /metrics agrees, and
// that nothing more happens over twice the longest backoff.
func (f *lvFixture) assertBudgetSpentAndNoLoop(t *testing.T, svc *Container, since time.Time) {
	t.Helper()
	WaitFor(t, 15*time.Second, func() (bool, string) {
		n := f.events.count(t, svc.ID, events.ActionRestart, since)
		return n >= lvBudget, fmt.Sprintf("got %d restart events, want %d: %s", n, lvBudget, f.events.summary(svc.ID))
	})
	f.waitMetric(t, remediations("restart", "ok"), lvBudget)
	for i := 1; i <= lvBudget; i++ {
		want := fmt.Sprintf("api: restart (attempt %d of %d)", i, lvBudget)
		if ls := f.findLogs(t, func(l lvLog) bool { return strings.HasPrefix(l.Msg, want) }); len(ls) != 1 {
			t.Errorf("got %d lines %q, want 1", len(ls), want)
		}
	}
	lvHold(t, 2*lvMaxBackoff, "no restart after degraded", func() (bool, string) {
		n := f.events.count(t, svc.ID, events.ActionRestart, since)
		ins := f.h.Inspect(t, svc.ID)
		return n == lvBudget && ins.State.Running,
			fmt.Sprintf("got %d restarts (running %v), want %d: %s", n, ins.State.Running, lvBudget, f.events.summary(svc.ID))
	})
	if v, err := f.metric(remediations("restart", "ok")); err != nil || v != lvBudget {
		t.Errorf("got restart ok = %v (%v) after the window, want %d", v, err, lvBudget)
	}
}

// on-drift=relabel with a budget of 0: the drifting container is recreated
// at once with labels saying what was observed and why, plus the quarantine
// labels, and keeps its name, its data (named and anonymous volumes), its
// network aliases and compose's labels. It is relabelled once, not again.
func TestLevelsRelabelKeepsDataNetworksAndLabels(t *testing.T) {
	t.Parallel()
	var anonVol string
	removeVolumeAfterSweep(t, H(t), &anonVol) // before lvNew: runs after the sweep
	f := lvNew(t)
	h := f.h
	f.startController(t, "CRANK_ENVIRONMENT=production", "CRANK_QUARANTINE_LABELS=traefik.enable=false")

	data := h.NewVolume(t)
	namedToken, anonToken := "named-"+randHex(4), "anon-"+randHex(4)
	h.WriteVolumeFile(t, data, "marker", []byte(namedToken), 0o644)
	svc := h.RunService(t,
		WithService("api"), WithNetwork(f.net, "api-alias"), WithCertsMount(f.certs, "/certs"),
		WithCertsMount(data, "/data"), WithMode("theater"),
		WithConfig(func(c *container.Config, _ *container.HostConfig) { c.Volumes = map[string]struct{}{"/anon": {}} }),
		WithLabels(map[string]string{"crank.security.on-drift": "relabel", "crank.security.restart-budget": "0"}),
		CreateOnly())
	for _, m := range h.Inspect(t, svc.ID).Mounts {
		if m.Destination == "/anon" {
			anonVol = m.Name
		}
	}
	if anonVol == "" {
		t.Fatalf("got no anonymous volume at /anon, want one")
	}
	h.WriteVolumeFile(t, anonVol, "marker", []byte(anonToken), 0o644)
	f.startService(t, svc)
	old := h.Inspect(t, svc.ID)
	started := startedAt(t, old)

	var got container.InspectResponse
	WaitFor(t, lvDeadline, func() (bool, string) {
		ins, err := f.inspectName(svc.Name)
		if err != nil {
			return false, err.Error()
		}
		if ins.ID == svc.ID || !ins.State.Running {
			return false, fmt.Sprintf("container %.12s running %v: not relabelled yet\n%s", ins.ID, ins.State.Running, f.logTail(t))
		}
		got = ins
		return true, ""
	})
	t.Logf("MEASURE: relabel: service start -> replacement running (engine time) = %s", startedAt(t, got).Sub(started).Round(time.Millisecond))

	if got.Name != old.Name {
		t.Errorf("got name %q, want %q", got.Name, old.Name)
	}
	// Recreate removes the old container last, after starting the new one.
	WaitFor(t, 30*time.Second, func() (bool, string) {
		_, err := f.inspectName(svc.ID)
		return cerrdefs.IsNotFound(err), fmt.Sprintf("got %v inspecting the old container, want not found", err)
	})
	// "default" on a container that is only on a user network becomes that
	// network's name (what compose sets), so the engine does not add bridge.
	if m := got.HostConfig.NetworkMode; m != old.HostConfig.NetworkMode &&
		!(old.HostConfig.NetworkMode.IsDefault() && string(m) == f.net) {
		t.Errorf("got network mode %q, want %q (or %q for default)", m, old.HostConfig.NetworkMode, f.net)
	}
	if g, w := slices.Sorted(maps.Keys(got.NetworkSettings.Networks)), slices.Sorted(maps.Keys(old.NetworkSettings.Networks)); !slices.Equal(g, w) {
		t.Errorf("got networks %v, want %v (network mode %q)", g, w, old.HostConfig.NetworkMode)
	}
	for k, want := range map[string]string{
		"crank.security.observed": "tls",
		"crank.security.drift":    "client-auth-not-enforced",
		"traefik.enable":          "false",
	} {
		if v := got.Config.Labels[k]; v != want {
			t.Errorf("got label %s=%q, want %q", k, v, want)
		}
	}
	compose := func(l map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range l {
			if strings.HasPrefix(k, "com.docker.compose.") {
				out[k] = v
			}
		}
		return out
	}
	if g, w := compose(got.Config.Labels), compose(old.Config.Labels); !maps.Equal(g, w) || len(w) == 0 {
		t.Errorf("got compose labels %v, want %v", g, w)
	}
	ep := got.NetworkSettings.Networks[f.net]
	if ep == nil {
		t.Fatalf("got no endpoint on %s, want one", f.net)
	}
	for _, a := range []string{"api", "api-alias"} {
		if !slices.Contains(ep.Aliases, a) {
			t.Errorf("got aliases %v, want %q among them", ep.Aliases, a)
		}
	}
	mounts := map[string]string{}
	for _, m := range got.Mounts {
		mounts[m.Destination] = cmp.Or(m.Name, m.Source)
	}
	for dst, want := range map[string]string{"/data": data, "/anon": anonVol, "/certs": f.certs} {
		if mounts[dst] != want {
			t.Errorf("got %q mounted at %s, want %q", mounts[dst], dst, want)
		}
	}
	for vol, want := range map[string]string{data: namedToken, anonVol: anonToken} {
		if b := h.ReadVolumeFile(t, vol, "marker"); string(b) != want {
			t.Errorf("got marker %q in volume %s, want %q", b, vol, want)
		}
	}
	if n := f.events.count(t, svc.ID, events.ActionRestart, started); n != 0 {
		t.Errorf("got %d restarts with restart-budget=0, want 0", n)
	}
	f.waitMetric(t, remediations("relabel", "ok"), 1)

	// The replacement is relabelled once, not again: over its start grace
	// and two probes it stays, and it is reported degraded.
	lvHold(t, 3*lvProbeInterval, "the replacement is not relabelled again", func() (bool, string) {
		ins, err := f.inspectName(svc.Name)
		if err != nil {
			return false, err.Error()
		}
		return ins.ID == got.ID && ins.State.Running, fmt.Sprintf("got %.12s running %v, want %.12s running\n%s",
			ins.ID, ins.State.Running, got.ID, f.logTail(t))
	})
	line := f.waitLog(t, "the replacement reported degraded", func(l lvLog) bool {
		return degraded("api")(l) && strings.Contains(l.Msg, "relabelled")
	})
	t.Logf("degraded: %s", line)
	if v, err := f.metric(remediations("relabel", "ok")); err != nil || v != 1 {
		t.Errorf("got relabel ok = %v (%v), want 1", v, err)
	}
}

// A service that serves a certificate of its own (here theater mode with no
// bundle in its CERTS_DIR: a self-signed one) never serves the bundle's, so
// every probe also finds served-cert-not-current. Relabel is still once:
// the replacement carries the labels and must be left alone, not relabelled
// (or restarted and relabelled) again and again.
func TestLevelsRelabelOnceForAServiceWithItsOwnCert(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	f.startController(t, "CRANK_ENVIRONMENT=production")
	svc := f.h.RunService(t, f.serviceOpts("api", WithMode("theater"), WithEnv("CERTS_DIR=/own"),
		WithLabels(map[string]string{"crank.security.on-drift": "relabel", "crank.security.restart-budget": "0"}), CreateOnly())...)
	f.startService(t, svc)

	var got container.InspectResponse
	WaitFor(t, lvDeadline, func() (bool, string) {
		ins, err := f.inspectName(svc.Name)
		if err != nil || ins.ID == svc.ID || !ins.State.Running {
			return false, fmt.Sprintf("not relabelled yet (%v)\n%s", err, f.logTail(t))
		}
		got = ins
		return true, ""
	})
	t.Logf("relabelled: observed=%s drift=%s", got.Config.Labels["crank.security.observed"], got.Config.Labels["crank.security.drift"])
	if v := got.Config.Labels["crank.security.drift"]; !strings.Contains(v, "untrusted-server-cert") {
		t.Errorf("got label crank.security.drift=%q, want untrusted-server-cert among the reasons", v)
	}
	// Watch the whole window, recording every container that holds the
	// name, so a loop shows how fast it turns.
	ids := []string{got.ID[:12]}
	lvHold(t, 4*lvProbeInterval, "watching the name", func() (bool, string) {
		if ins, err := f.inspectName(svc.Name); err == nil && !slices.Contains(ids, ins.ID[:12]) {
			ids = append(ids, ins.ID[:12])
		}
		return true, ""
	})
	n, err := f.metric(remediations("relabel", "ok"))
	if len(ids) != 1 || err != nil || n != 1 {
		t.Errorf("got %d containers under the name %v and relabel ok = %v (%v) within %s of the first relabel, want 1 and 1 (relabel once)\n%s",
			len(ids), ids, n, err, 4*lvProbeInterval, f.logTail(t))
	}
}

// CRANK_MODE=observe: the same drift (theater in production) is planned and
// logged, with the same cadence, and no container changes.
func TestLevelsObserveModeChangesNothing(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	f.startController(t, "CRANK_ENVIRONMENT=production", "CRANK_MODE=observe")
	svc := f.h.RunService(t, f.serviceOpts("api", WithMode("theater"), CreateOnly())...)
	f.startService(t, svc)
	before := f.h.Inspect(t, svc.ID)
	started := startedAt(t, before)

	plan := f.waitLog(t, "api: would restart", func(l lvLog) bool {
		return l.Service == "api" && strings.HasPrefix(l.Msg, "api: would restart") && strings.Contains(l.Msg, "observe mode")
	})
	t.Logf("plan: %s", plan)
	if plan.Action != "restart" || plan.Level != "WARN" {
		t.Errorf("got %s with action %q, want a WARN with action restart", plan, plan.Action)
	}
	unchanged := func() (bool, string) {
		ins, err := f.inspectName(svc.Name)
		if err != nil {
			return false, err.Error()
		}
		if ins.ID != svc.ID || ins.State.StartedAt != before.State.StartedAt || !ins.State.Running {
			return false, fmt.Sprintf("got %.12s started %s running %v, want %.12s started %s", ins.ID, ins.State.StartedAt,
				ins.State.Running, svc.ID, before.State.StartedAt)
		}
		for _, a := range []events.Action{events.ActionKill, events.ActionDie, events.ActionStop, events.ActionRestart, events.ActionRename, events.ActionDestroy} {
			if n := f.events.count(t, svc.ID, a, started); n > 0 {
				return false, fmt.Sprintf("got %d %s events, want none: %s", n, a, f.events.summary(svc.ID))
			}
		}
		return true, ""
	}
	// Budget and backoff advance in observe mode too: two dry runs, then
	// degraded, as enforcement would have done. The window covers both
	// backoffs twice over.
	line := f.waitLog(t, "api degraded (observe mode)", degraded("api"))
	t.Logf("degraded: %s", line)
	lvHold(t, 2*lvMaxBackoff, "observe mode changes no container", unchanged)
	f.waitMetric(t, remediations("restart", "dry-run"), lvBudget)
	if v, err := f.metric(remediations("restart", "ok")); err != nil || v != 0 {
		t.Errorf("got restart ok = %v (%v) in observe mode, want 0", v, err)
	}
}

// The bundle disappears (or is corrupted) while the service runs on it: the
// controller writes a new one, restarts the service, which is back at mtls
// serving the new certificate.
//
// Deletion is real: the certs root is a host directory, so the test removes
// <certs>/api with os.RemoveAll. Corruption overwrites the visible tls.crt,
// which writes through the symlink into the current ..<timestamp>
// generation, exactly what a stray `echo > tls.crt` in the volume does.
func TestLevelsDeletedOrCorruptBundleIsRestored(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	f.startController(t)
	svc := f.h.RunService(t, f.serviceOpts("api", CreateOnly())...)
	f.startService(t, svc)
	f.waitLog(t, "api reaches mtls", levelChange("api", "mtls"))
	WaitFor(t, 30*time.Second, func() (bool, string) { return f.checkMTLS(t, svc) })

	for i, damage := range []struct {
		name string
		do   func() error
	}{
		{"deleted", func() error { return os.RemoveAll(filepath.Join(f.certs, "api")) }},
		{"corrupt", func() error {
			return os.WriteFile(filepath.Join(f.certs, "api", "tls.crt"), []byte("not a certificate\n"), 0o644)
		}},
	} {
		old, err := f.fingerprintOnDisk("api")
		if err != nil {
			t.Fatalf("before %s: %v", damage.name, err)
		}
		at := time.Now()
		if err := damage.do(); err != nil {
			t.Fatalf("%s: %v", damage.name, err)
		}
		var restored time.Duration
		WaitFor(t, lvDeadline, func() (bool, string) {
			fp, err := f.fingerprintOnDisk("api")
			if err != nil || fp == old {
				return false, fmt.Sprintf("bundle not restored yet (%v)\n%s", err, f.logTail(t))
			}
			if restored == 0 {
				restored = time.Since(at)
			}
			return true, ""
		})
		WaitFor(t, lvDeadline, func() (bool, string) {
			if n := f.events.count(t, svc.ID, events.ActionRestart, at); n < 1 {
				return false, "not restarted yet: " + f.events.summary(svc.ID) + "\n" + f.logTail(t)
			}
			return f.checkMTLS(t, svc)
		})
		t.Logf("MEASURE: bundle-%s: damage -> new bundle on disk (test clock, polled) = %s", damage.name, restored.Round(time.Millisecond))
		t.Logf("MEASURE: bundle-%s: damage -> serving the new certificate over mTLS (test clock, polled) = %s", damage.name, time.Since(at).Round(time.Millisecond))
		lvHold(t, 2*lvProbeInterval, "one restart per damage", func() (bool, string) {
			n := f.events.count(t, svc.ID, events.ActionRestart, at)
			return n == 1, fmt.Sprintf("got %d restarts after the bundle was %s, want 1: %s", n, damage.name, f.events.summary(svc.ID))
		})
		f.waitMetric(t, remediations("restart", "ok"), float64(i+1))
	}
	issued := f.findLogs(t, func(l lvLog) bool { return strings.HasPrefix(l.Msg, "api: issued bundle") })
	for _, l := range issued {
		t.Logf("issued: %s", l)
	}
	if len(issued) != 3 {
		t.Errorf("got %d bundle issues, want 3 (create, deleted, corrupt)", len(issued))
	}
}

// A container the user stopped stays stopped: the controller sees it go
// down and never starts it.
func TestLevelsStoppedContainerStaysStopped(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	f.startController(t)
	svc := f.h.RunService(t, f.serviceOpts("api", CreateOnly())...)
	f.startService(t, svc)
	f.waitLog(t, "api reaches mtls", levelChange("api", "mtls"))

	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	timeout := 5
	stopped := time.Now()
	if err := f.h.Docker.ContainerStop(ctx, svc.ID, container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatalf("stopping %s: %v", svc.Name, err)
	}
	line := f.waitLog(t, "the controller sees api down", levelChange("api", "down"))
	t.Logf("down: %s", line)
	lvHold(t, 4*lvProbeInterval, "a stopped container stays stopped", func() (bool, string) {
		ins := f.h.Inspect(t, svc.ID)
		n := f.events.count(t, svc.ID, events.ActionStart, stopped)
		return !ins.State.Running && ins.State.Status == "exited" && n == 0,
			fmt.Sprintf("got status %s and %d start events, want exited and none: %s", ins.State.Status, n, f.events.summary(svc.ID))
	})
	for _, r := range []string{"ok", "error", "rate-limited"} {
		if v, err := f.metric(remediations("restart", r)); err != nil || v != 0 {
			t.Errorf("got restart %s = %v (%v), want 0", r, v, err)
		}
	}
}
