//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stormRow is one N's figures.
type stormRow struct {
	N          int
	controller string // its label
	storm      stormFigures
	status     statusFigures
	product    []histogramQuantiles // none while the controller exports none
	restart    restartFigures
	errors     int    // ERROR lines the controller logged over the storm
	load       string // 1-minute load average at the start
	others     int    // containers on the engine before the storm
	wall       time.Duration
}

// stormFigures are the storm's latencies and the controller's cost.
type stormFigures struct {
	start          time.Time
	createToBundle []time.Duration // ContainerCreate returned → ..data appeared
	eventToBundle  []time.Duration // the create event's TimeNano → ..data appeared
	lastCreate     time.Time       // when the last ContainerCreate returned
	lastStart      time.Time
	lastBundle     time.Time
	cpu            time.Duration // utime+stime from the first create until the queue drained
	window         time.Duration // that span
	peakRSS        int64         // VmHWM
	steady         time.Duration // CPU over the probe interval after the storm
}

func (f *stormFigures) collect(made *stormMade, landed, events map[string]time.Time) {
	for _, c := range made.all() {
		at := landed[c.service]
		f.createToBundle = append(f.createToBundle, at.Sub(c.created))
		f.eventToBundle = append(f.eventToBundle, at.Sub(events[c.id]))
		if c.created.After(f.lastCreate) {
			f.lastCreate = c.created
		}
		if c.started.After(f.lastStart) {
			f.lastStart = c.started
		}
		if at.After(f.lastBundle) {
			f.lastBundle = at
		}
	}
}

type statusFigures struct {
	median, max time.Duration
	size        int
}

// restartFigures: see measureRestarts.
type restartFigures struct {
	ready        time.Duration // process start → first /readyz 200
	cpu5s        time.Duration // CPU in the first 5 s of the process
	drain        time.Duration // ready → queue drained, probes an hour apart
	drainCPU     time.Duration // CPU from process start until then: one pass over every container
	resyncAt     time.Duration // R
	resyncWindow time.Duration // W
	baseline     time.Duration // B's CPU over [R-2s, R+W]
	withResync   time.Duration // C's CPU over the same window
}

// histogramQuantiles are p50 and p99 of one series of a Prometheus
// histogram, estimated the way histogram_quantile does (linear within a
// bucket).
type histogramQuantiles struct {
	series   string  // name{labels}, without le
	p50, p99 float64 // seconds
	count    float64
}

// productEventToBundle reads the controller's own event → bundle histogram
// from /metrics, if it exports one: every series of each histogram whose
// name mentions both an event and a bundle, in name order.
func productEventToBundle(ctl *hostController) []histogramQuantiles {
	code, body, _, err := ctl.get("/metrics")
	if err != nil || code != 200 {
		return nil
	}
	buckets := map[string]map[float64]float64{} // series → le → cumulative count
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		series, le, v, ok := parseBucket(sc.Text())
		if !ok {
			continue
		}
		if buckets[series] == nil {
			buckets[series] = map[float64]float64{}
		}
		buckets[series][le] = v
	}
	var out []histogramQuantiles
	for series, b := range buckets {
		if q, ok := quantilesOf(series, b); ok {
			out = append(out, q)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].series < out[j].series })
	return out
}

// parseBucket reads one line `name_bucket{labels} value` of an event →
// bundle histogram in the text format, and returns the series without its
// le label.
func parseBucket(line string) (series string, le, v float64, ok bool) {
	name, rest, found := strings.Cut(line, "_bucket{")
	if !found || strings.HasPrefix(line, "#") || !strings.Contains(name, "event") || !strings.Contains(name, "bundle") {
		return "", 0, 0, false
	}
	labels, value, found := strings.Cut(rest, "} ")
	if !found {
		return "", 0, 0, false
	}
	var kept []string
	for _, l := range strings.Split(labels, ",") {
		if raw, isLE := strings.CutPrefix(l, `le="`); isLE {
			var err error
			if le, err = strconv.ParseFloat(strings.TrimSuffix(raw, `"`), 64); err != nil {
				return "", 0, 0, false
			}
			continue
		}
		kept = append(kept, l)
	}
	fields := strings.Fields(value)
	if len(fields) == 0 {
		return "", 0, 0, false
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	return name + "{" + strings.Join(kept, ",") + "}", le, v, err == nil
}

func quantilesOf(series string, b map[float64]float64) (histogramQuantiles, bool) {
	les := make([]float64, 0, len(b))
	for le := range b {
		les = append(les, le)
	}
	sort.Float64s(les)
	total := b[math.Inf(1)]
	if total == 0 {
		return histogramQuantiles{}, false
	}
	q := func(p float64) float64 {
		rank := p * total
		prevLE, prevCount := 0.0, 0.0
		for _, le := range les {
			if b[le] >= rank {
				if math.IsInf(le, 1) {
					return prevLE // above the last finite bucket: its bound is all we know
				}
				return prevLE + (le-prevLE)*(rank-prevCount)/max(b[le]-prevCount, 1e-12)
			}
			prevLE, prevCount = le, b[le]
		}
		return prevLE
	}
	return histogramQuantiles{series: series, p50: q(0.50), p99: q(0.99), count: total}, true
}

// summary is one log line per N, for following a long run.
func (r stormRow) summary() string {
	return fmt.Sprintf("create→bundle p50 %s p99 %s, event→bundle p50 %s p99 %s, CPU %s/container, peak RSS %s, ready %s, resync CPU %s, took %s",
		ms(percentile(r.storm.createToBundle, 0.5)), ms(percentile(r.storm.createToBundle, 0.99)),
		ms(percentile(r.storm.eventToBundle, 0.5)), ms(percentile(r.storm.eventToBundle, 0.99)),
		ms(r.storm.cpu/time.Duration(r.N)), mib(r.storm.peakRSS), ms(r.restart.ready),
		secs(r.restart.withResync-r.restart.baseline), r.wall.Round(time.Second))
}

// stormConditions describes the run: what was measured, on what.
func stormConditions(h *Harness, ctls []stormController) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	engine := "unknown"
	if v, err := h.Docker.ServerVersion(ctx); err == nil {
		engine = v.Version
	}
	var b strings.Builder
	for _, c := range ctls {
		version, _ := exec.CommandContext(ctx, c.path, "version").Output()
		fmt.Fprintf(&b, "- controller %s: %s (%s)\n", c.label, orUnknown(version), c.path)
	}
	commit, _ := exec.CommandContext(ctx, "git", "-C", h.root, "describe", "--always", "--dirty", "--abbrev=12").Output()
	fmt.Fprintf(&b, "- benchmark from %s; engine %s, %d cores, %s\n",
		orUnknown(commit), engine, runtime.NumCPU(), time.Now().UTC().Format(time.RFC3339))
	return b.String()
}

func orUnknown(b []byte) string {
	if s := strings.Join(strings.Fields(string(b)), " "); s != "" {
		return s
	}
	return "unknown"
}

// renderStorm is the markdown report.
func renderStorm(conditions string, rows []stormRow, wall time.Duration) string {
	var b strings.Builder
	b.WriteString("# Start storm: the controller's cost per container\n\n")
	b.WriteString(conditions)
	fmt.Fprintf(&b, "- controller on the host, observe mode, probe interval %s, default workers; one compose project, one service per container; "+
		"all N created, then all started, %d calls in flight\n", stormProbeInterval, stormConcurrency)
	fmt.Fprintf(&b, "- whole run: %s\n\n", wall.Round(time.Second))
	b.WriteString("| N | controller | create → bundle p50 / p99 | event → bundle p50 / p99 | event → bundle, controller's histogram p50 / p99 | CPU per container | steady CPU per container per 30 s | peak RSS | ready after restart | CPU in 5 s after restart | resync CPU | status API time / size | last create → last bundle | ERROR lines |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		s := r.storm
		fmt.Fprintf(&b, "| %d | %s | %s / %s | %s / %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s | %d |\n", r.N, r.controller,
			ms(percentile(s.createToBundle, 0.5)), ms(percentile(s.createToBundle, 0.99)),
			ms(percentile(s.eventToBundle, 0.5)), ms(percentile(s.eventToBundle, 0.99)),
			productCell(r.product), ms(s.cpu/time.Duration(r.N)), ms(s.steady/time.Duration(r.N)), mib(s.peakRSS),
			secs(r.restart.ready), secs(r.restart.cpu5s), secs(r.restart.withResync-r.restart.baseline),
			ms(r.status.median), kib(r.status.size), ms(s.lastBundle.Sub(s.lastCreate)), r.errors)
	}
	b.WriteString("\nDetails:\n\n")
	for _, r := range rows {
		s, rs := r.storm, r.restart
		fmt.Fprintf(&b, "- N=%d, %s: storm CPU %s over %s (first create → queue drained; first create → last bundle %s, → last start %s); "+
			"restart's pass drained in %s, using %s of CPU; resync at R=%s, window [R-2s, R+%s]: %s with the resync, %s without; "+
			"status API max %s; controller's histogram: %s; load %s and %d other containers at the start; took %s\n",
			r.N, r.controller, secs(s.cpu), secs(s.window), secs(s.lastBundle.Sub(s.start)), secs(s.lastStart.Sub(s.start)), secs(rs.drain), secs(rs.drainCPU), rs.resyncAt, rs.resyncWindow,
			secs(rs.withResync), secs(rs.baseline), ms(r.status.max), productName(r.product), r.load, r.others, r.wall.Round(time.Second))
	}
	b.WriteString(stormLegend)
	return b.String()
}

// productCell is the controller's own histogram, one series after another.
func productCell(qs []histogramQuantiles) string {
	if len(qs) == 0 {
		return "not exported"
	}
	var parts []string
	for _, q := range qs {
		parts = append(parts, fmt.Sprintf("%s: %s / %s", seriesLabels(q.series),
			ms(time.Duration(q.p50*float64(time.Second))), ms(time.Duration(q.p99*float64(time.Second)))))
	}
	return strings.Join(parts, "; ")
}

func productName(qs []histogramQuantiles) string {
	if len(qs) == 0 {
		return "none"
	}
	var parts []string
	for _, q := range qs {
		parts = append(parts, fmt.Sprintf("%s (%.0f observations)", q.series, q.count))
	}
	return strings.Join(parts, ", ")
}

// seriesLabels is a series' labels without the braces, or its name if it
// has none.
func seriesLabels(series string) string {
	name, labels, _ := strings.Cut(series, "{")
	if labels = strings.TrimSuffix(labels, "}"); labels != "" {
		return strings.ReplaceAll(labels, `"`, "")
	}
	return name
}

const stormLegend = `
How each figure is taken:

- The containers are created, all N of them, then started, 8 calls in flight, as compose does: the controller can issue each bundle before its process starts. Every container runs the test service, which waits for its bundle and serves mTLS, so probes are real handshakes. Other containers on the engine are inspected by the controller too (see the details).
- create → bundle: from ContainerCreate returning to ..data appearing in the service's bundle directory (inotify). event → bundle: from the create event's own time (TimeNano) to the same moment; it leaves out the create call's own time.
- CPU per container: the controller process's utime+stime (/proc/<pid>/stat) from the first create until its queue drained (under a tenth of a core for 1 s), divided by N. Peak RSS: VmHWM at that moment. The engine here starts a few containers a second, so a storm of 1,000 lasts several probe intervals and its CPU includes probes of the containers already running: steady CPU per container is the CPU of the probe interval right after the storm, divided by N, to tell the two apart.
- ready after restart: SIGTERM, a new process over the same state, time from its start to the first /readyz 200. CPU in 5 s: the new process's CPU in its first 5 s.
- resync CPU: the controller is restarted twice more with probes an hour apart (so none fall in the window), identically except that the second has a resync interval R just after the restart's pass over every container drained; resync CPU is the second's CPU minus the first's over the same window around R (both measured from readiness), so the restart's own work cancels out. It is whatever the controller does when its resync interval comes round, the first time after a start. The details give both figures, so the noise can be judged, and the CPU of the restart's own pass.
- status API: GET /api/v1/status over loopback on a new connection, median of 7 after the storm.
`

func ms(d time.Duration) string {
	switch {
	case d >= 10*time.Second || d <= -10*time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	case d >= time.Second || d <= -time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	default:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func kib(b int) string { return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10)) }
