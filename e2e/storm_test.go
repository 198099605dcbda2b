//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
)

// TestStorm is the start-storm benchmark behind `make bench-storm`. It runs
// only when STORM_N is set to a comma-separated list of container counts
// (e.g. STORM_N=100,500,1000), so `make e2e` skips it. For each N, in one
// compose project: start the controller on the host in observe mode with a
// fresh state dir and certs root, create STORM_IDLE containers (default 50,
// 0 for none) one at a time against the idle controller and remove them,
// create N testservice containers and then start them, 8 calls at a time,
// measure, restart the controller three times, and remove everything. The
// table goes to STORM_OUT (default bench-storm.md at the module root) and to
// the test log.
//
// STORM_CONTROLLER may name several binaries (label=path,label=path): each
// N is then run with each in turn, so a change is measured against its
// baseline in one run, on the same machine under the same load.
//
// STORM_PERIODIC is on (the default: the operator's 30 s probe interval),
// off (probes only on events: an interval longer than any storm) or both
// (each N and binary runs twice, on then off). The engine here starts a
// few containers a second, so a storm of 1,000 lasts several probe
// intervals: with periodic probes on, its CPU per container grows with N
// through the probes of the containers already running, whatever the
// controller does per container. Off measures what handling a container's
// create and start costs, alone.
//
// Every figure is the controller's own (its process's CPU and memory from
// /proc, its bundles on disk). See storm_report_test.go for what each
// column means.
func TestStorm(t *testing.T) {
	sizes := stormSizes(t)
	idle := stormIdle(t)
	h := H(t)
	ctls := stormControllers(t, h)
	variants := stormVariants(t)
	plan := stormPlan{image: h.ServiceImage(t), idle: idle}
	plan.networks = newStormNetworks(t, h, slices.Max(sizes)+idle)
	began := time.Now()
	var rows []stormRow
run:
	for _, n := range sizes {
		for _, c := range ctls {
			for _, v := range variants {
				label := c.label + v.suffix
				ok := t.Run(fmt.Sprintf("N=%d/%s", n, label), func(t *testing.T) {
					row := runStorm(t, h, c.path, plan, n, v.probe)
					row.controller = label
					rows = append(rows, row)
				})
				if !ok {
					break run
				}
			}
		}
	}
	if len(rows) == 0 {
		return
	}
	report := renderStorm(stormConditions(h, ctls), rows, time.Since(began))
	out := os.Getenv("STORM_OUT")
	if out == "" {
		out = filepath.Join(h.root, "bench-storm.md")
	}
	if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
		t.Errorf("writing %s: %v", out, err)
	}
	t.Logf("report written to %s:\n%s", out, report)
}

// stormSizes parses STORM_N, skipping the test when it is unset.
func stormSizes(t *testing.T) []int {
	t.Helper()
	raw := os.Getenv("STORM_N")
	if raw == "" {
		t.Skip("storm benchmark: set STORM_N (e.g. 100,500,1000) or run `make bench-storm`")
	}
	var sizes []int
	for _, f := range strings.Split(raw, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxStormN {
			t.Fatalf("STORM_N=%q: want container counts from 1 to %d, comma separated", raw, maxStormN)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// maxStormN keeps a typo from starting a storm the engine cannot hold.
const maxStormN = 5000

// stormIdle parses STORM_IDLE, the number of containers of each storm's
// idle phase.
func stormIdle(t *testing.T) int {
	t.Helper()
	raw := os.Getenv("STORM_IDLE")
	if raw == "" {
		return defaultStormIdle
	}
	n, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || n < 0 || n > maxStormIdle {
		t.Fatalf("STORM_IDLE=%q: want a container count from 0 (no idle phase) to %d", raw, maxStormIdle)
	}
	return n
}

const (
	defaultStormIdle = 50
	// maxStormIdle keeps the phase, at roughly half a second a container,
	// to minutes.
	maxStormIdle = 1000
)

// stormVariant is one way of running each storm's controller.
type stormVariant struct {
	suffix string        // added to the controller's label in the report
	probe  time.Duration // its probe interval
}

// stormVariants parses STORM_PERIODIC.
func stormVariants(t *testing.T) []stormVariant {
	t.Helper()
	on := stormVariant{probe: stormProbeInterval}
	off := stormVariant{suffix: ", periodic probes off", probe: eventsOnlyProbeInterval}
	switch raw := os.Getenv("STORM_PERIODIC"); raw {
	case "", "on":
		return []stormVariant{on}
	case "off":
		return []stormVariant{off}
	case "both":
		return []stormVariant{on, off}
	default:
		t.Fatalf("STORM_PERIODIC=%q: want on, off or both", raw)
		return nil
	}
}

// eventsOnlyProbeInterval is longer than any storm: the controller then
// probes a container only when an event or a decision asks for it.
const eventsOnlyProbeInterval = 24 * time.Hour

// stormPlan is what every storm of the run shares.
type stormPlan struct {
	image    string
	networks []string // enough for the largest N plus the idle phase
	idle     int
}

// stormController is one controller binary the storm runs.
type stormController struct{ label, path string }

// stormControllers are STORM_CONTROLLER's binaries (path or label=path,
// comma separated), or the module's bin/controller from `make build`.
func stormControllers(t *testing.T, h *Harness) []stormController {
	t.Helper()
	raw := os.Getenv("STORM_CONTROLLER")
	if raw == "" {
		raw = filepath.Join(h.root, "bin", "controller")
	}
	var out []stormController
	for _, f := range strings.Split(raw, ",") {
		label, path, ok := strings.Cut(f, "=")
		if !ok {
			label, path = "", f
		}
		if _, err := os.Stat(path); err != nil {
			t.Fatalf("controller binary: %v (run `make build`, or set STORM_CONTROLLER)", err)
		}
		if label == "" {
			label = filepath.Base(path)
		}
		out = append(out, stormController{label: label, path: path})
	}
	return out
}

// runStorm measures one idle phase and one storm of n containers, and
// removes them.
func runStorm(t *testing.T, h *Harness, bin string, plan stormPlan, n int, probeInterval time.Duration) stormRow {
	began := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), stormBudget(n, plan.idle))
	defer cancel()
	project := h.Project(t)
	var made, idleMade stormMade
	// Registered before the controller's stop, so it runs after it: the
	// controller must not spend the removal reconciling destroy events.
	t.Cleanup(func() {
		idleMade.remove(t, h)
		made.remove(t, h)
	})
	ctl, err := newHostController(bin, t.TempDir(), project)
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.start(probeInterval, time.Hour); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = ctl.stop()
		keepLog(t, ctl, n)
	})
	if _, err := ctl.waitReady(time.Minute); err != nil {
		t.Fatal(err)
	}

	row := stormRow{N: n, probeInterval: probeInterval, others: otherContainers(h)}
	spec := stormSpec{image: plan.image, project: project, networks: plan.networks, n: n, idle: plan.idle,
		certsRoot: ctl.certsRoot, labels: h.labels(t, "service")}
	row.idle = measureIdle(ctx, t, h, ctl, &idleMade, spec)
	row.load = hostLoad()
	row.storm = measureStorm(ctx, t, h, ctl, &made, spec)
	row.status = measureStatus(t, ctl)
	// The histogram counts since the process started: the idle phase's
	// observations are taken out, so this is the storm's alone.
	row.product = readEventToBundle(ctl).minus(row.idle.histogram).quantiles()
	row.errors = ctl.errorLines()
	row.restart = measureRestarts(t, ctl)
	row.wall = time.Since(began)
	t.Logf("N=%d: %s", n, row.summary())
	return row
}

// maxPerNetwork stays under a Linux bridge's 1,024 ports.
const maxPerNetwork = 1000

// stormBudget bounds one idle phase and storm: generous, since the engine
// on two cores starts a few containers a second, and each idle container
// takes its create, its bundle and idlePause.
func stormBudget(n, idle int) time.Duration {
	return 5*time.Minute + time.Duration(n)*500*time.Millisecond + time.Duration(idle)*2*time.Second
}

// measureStorm creates and starts the containers, waits for every bundle,
// and reads the controller's CPU and memory over the storm.
func measureStorm(ctx context.Context, t *testing.T, h *Harness, ctl *hostController, made *stormMade, spec stormSpec) stormFigures {
	t.Helper()
	watch, err := watchBundles(ctl.certsRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.close()
	start := time.Now()
	creates := recordCreates(h.Docker, spec.project, start.Add(-time.Second))
	defer creates.close()
	cpu0 := ctl.cpu.now()
	if err := createStorm(ctx, h, spec, made); err != nil {
		t.Fatal(err)
	}
	f := stormFigures{start: start}
	awaitFigures(ctx, t, watch, creates, made, &f)
	// The storm ends when the controller's queue has drained after the
	// last start and the last bundle: the starts' reconciles and probes
	// are part of its cost.
	from := max(f.lastBundle.Sub(ctl.started), f.lastStart.Sub(ctl.started))
	quiet := waitQuiet(ctl, from, from+stormSettle)
	f.cpu = ctl.cpu.cpuAt(quiet) - cpu0
	f.window = quiet - start.Sub(ctl.started)
	f.running = runningWithin(made.all(), ctl.started.Add(quiet))
	f.probes, f.reconciles = readWork(ctl)
	if f.peakRSS, err = ctl.peakRSS(); err != nil {
		t.Fatal(err)
	}
	t.Logf("host memory available after the storm: %s", memAvailable())
	// A settled stack costs its probes and whatever else runs on a timer:
	// one whole probe interval of it. On a slow engine the storm itself
	// lasts several intervals, so this share of its CPU per container
	// grows with N whatever the controller does; this figure tells it
	// apart.
	sleepUntilOffset(ctl, quiet+stormProbeInterval)
	f.steady = ctl.cpu.cpuAt(quiet+stormProbeInterval) - ctl.cpu.cpuAt(quiet)
	return f
}

// awaitFigures waits for the bundle and the create event of every
// container made, and collects into f what they tell.
func awaitFigures(ctx context.Context, t *testing.T, watch *bundleWatch, creates *createEvents, made *stormMade, f *stormFigures) {
	t.Helper()
	landed, err := watch.waitAll(ctx, made.services())
	if err != nil {
		t.Fatal(err)
	}
	events, err := creates.waitAll(ctx, made.ids())
	if err != nil {
		t.Fatal(err)
	}
	f.collect(made, landed, events)
}

// stormSettle bounds the wait for the queue to drain after the last bundle.
const stormSettle = 60 * time.Second

// waitQuiet waits (in real time) until the controller has been quiet after
// offset from, or until offset until, and returns that offset.
func waitQuiet(ctl *hostController, from, until time.Duration) time.Duration {
	for {
		if q, ok := ctl.cpu.quietAfter(from, min(until, ctl.cpu.lastOffset())); ok {
			return q
		}
		if ctl.cpu.lastOffset() >= until {
			return until
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sleepUntilOffset waits until the controller process is offset old.
func sleepUntilOffset(ctl *hostController, offset time.Duration) {
	time.Sleep(time.Until(ctl.started.Add(offset)) + 2*cpuSampleEvery)
}

// measureStatus times GET /api/v1/status a few times, each on a new
// connection, and keeps the median.
func measureStatus(t *testing.T, ctl *hostController) statusFigures {
	t.Helper()
	var took []time.Duration
	size := 0
	for range statusTries {
		code, body, d, err := ctl.get("/api/v1/status")
		if err != nil || code != 200 {
			t.Fatalf("GET /api/v1/status: %d %v", code, err)
		}
		took, size = append(took, d), len(body)
	}
	return statusFigures{median: percentile(took, 0.5), max: percentile(took, 1), size: size}
}

const statusTries = 7

// measureRestarts restarts the controller three times over the same
// state:
//
//   - A, configured as for the storm: how soon it is ready and what its
//     first 5 s cost;
//   - B, with probes out of the way (an hour apart) and an hour-long
//     resync: when its queue drained after the restart's pass over every
//     container (D), and that pass's CPU;
//   - C, identical to B but with a resync interval R just past D.
//
// The resync's CPU is C's minus B's over the same window around R (from
// R-2s to R+W), measured from each process's readiness: the rest (the
// watchdog, events from other containers on the engine) is in both. Probes
// are kept out of the window because a controller busy with them, as the
// slow one is at 1,000 containers, folds the resync's keys into keys
// already queued, and its figure would be noise. B's figure over the window
// is reported too, as the noise to judge the difference by.
func measureRestarts(t *testing.T, ctl *hostController) restartFigures {
	t.Helper()
	var f restartFigures
	f.ready = restartOnce(t, ctl, stormProbeInterval, time.Hour)
	sleepUntilOffset(ctl, 5*time.Second)
	f.cpu5s = ctl.cpu.cpuAt(5 * time.Second)

	b := restartOnce(t, ctl, time.Hour, time.Hour)
	drained := waitQuiet(ctl, b, b+restartSettle)
	f.drain, f.drainCPU = drained-b, ctl.cpu.cpuAt(drained)
	f.resyncAt = max(10*time.Second, f.drain.Round(time.Second)+5*time.Second)
	f.resyncWindow = max(15*time.Second, f.drain+10*time.Second)
	from, to := f.resyncAt-2*time.Second, f.resyncAt+f.resyncWindow
	sleepUntilOffset(ctl, b+to)
	f.baseline = ctl.cpu.cpuAt(b+to) - ctl.cpu.cpuAt(b+from)

	c := restartOnce(t, ctl, time.Hour, f.resyncAt)
	sleepUntilOffset(ctl, c+to)
	f.withResync = ctl.cpu.cpuAt(c+to) - ctl.cpu.cpuAt(c+from)
	return f
}

// restartSettle bounds the wait for a restart's queue to drain.
const restartSettle = 2 * time.Minute

// restartOnce stops the controller, starts it with the given probe and
// resync intervals and returns how long it took to be ready.
func restartOnce(t *testing.T, ctl *hostController, probe, resync time.Duration) time.Duration {
	t.Helper()
	if err := ctl.stop(); err != nil {
		t.Fatal(err)
	}
	if err := ctl.start(probe, resync); err != nil {
		t.Fatal(err)
	}
	ready, err := ctl.waitReady(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return ready
}

// memAvailable is the host's MemAvailable, for the log: a thousand
// containers are mostly shims and fuse mounts.
func memAvailable() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "unknown"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return "unknown"
}

// keepLog copies the controller's log to STORM_LOGS, when set, before the
// temp dir goes.
func keepLog(t *testing.T, ctl *hostController, n int) {
	dir := os.Getenv("STORM_LOGS")
	if dir == "" {
		return
	}
	data, err := os.ReadFile(ctl.logPath)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("controller-%d.log", n)), data, 0o644)
	}
	if err != nil {
		t.Errorf("keeping the controller log: %v", err)
	}
}

// hostLoad is the 1-minute load average as the storm starts: other work on
// the machine's two cores shows up in every latency.
func hostLoad() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	load, _, _ := strings.Cut(string(data), " ")
	return load
}

// otherContainers counts containers already on the engine: the controller
// inspects each one on every list and event, managed or not.
func otherContainers(h *Harness) int {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	cs, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return -1
	}
	return len(cs)
}
