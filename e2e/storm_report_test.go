//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// stormRow is one N's figures.
type stormRow struct {
	N             int
	controller    string        // its label
	probeInterval time.Duration // the storm's controller's
	idle          idleFigures
	storm         stormFigures
	status        statusFigures
	product       []histogramQuantiles // the storm's share; none while the controller exports none
	restart       restartFigures
	errors        int    // ERROR lines the controller logged over the storm
	load          string // 1-minute load average at the start
	others        int    // containers on the engine before the storm
	wall          time.Duration
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
	running        time.Duration // the containers' running times inside the window, summed
	// probes and reconciles are the controller's own counts as the queue
	// drained (its process started just before the storm; the idle phase's
	// are in too).
	probes, reconciles float64
}

// idleFigures are the latencies of the idle phase: see measureIdle.
type idleFigures struct {
	createToBundle []time.Duration
	eventToBundle  []time.Duration
	histogram      histogramBuckets // the controller's, as the phase ended
}

// runningWithin sums, over cs, the time each ran from its start until end.
func runningWithin(cs []stormContainer, end time.Time) time.Duration {
	var sum time.Duration
	for _, c := range cs {
		if !c.started.IsZero() && c.started.Before(end) {
			sum += end.Sub(c.started)
		}
	}
	return sum
}

// probesExcluded is the storm's CPU less an estimate of its periodic
// probes: the steady CPU per container of one probe interval, times the
// number of probe intervals the containers ran inside the window, summed
// over containers. It is never below zero.
func (f stormFigures) probesExcluded(n int) time.Duration {
	intervals := float64(f.running) / float64(stormProbeInterval)
	probes := time.Duration(float64(f.steady) / float64(n) * intervals)
	return max(0, f.cpu-probes)
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

// histogramBuckets are the buckets of the controller's event → bundle
// histograms: series (name{labels}, without le) → le → cumulative count.
type histogramBuckets map[string]map[float64]float64

// readEventToBundle reads the controller's own event → bundle histograms
// from /metrics, if it exports any: every series of each histogram whose
// name mentions both an event and a bundle. It is nil when /metrics cannot
// be read.
func readEventToBundle(ctl *hostController) histogramBuckets {
	code, body, _, err := ctl.get("/metrics")
	if err != nil || code != 200 {
		return nil
	}
	buckets := histogramBuckets{}
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
	return buckets
}

// readWork sums the controller's probe and reconcile counters; zero where
// it exports none.
func readWork(ctl *hostController) (probes, reconciles float64) {
	code, body, _, err := ctl.get("/metrics")
	if err != nil || code != 200 {
		return 0, 0
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) < 2 || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.ParseFloat(fields[1], 64)
		if err != nil {
			continue
		}
		switch name, _, _ := strings.Cut(fields[0], "{"); name {
		case "crank_security_probe_duration_seconds_count":
			probes += v
		case "crank_security_reconcile_total":
			reconciles += v
		}
	}
	return probes, reconciles
}

// minus is what was observed since base was read from the same process.
func (b histogramBuckets) minus(base histogramBuckets) histogramBuckets {
	out := histogramBuckets{}
	for series, counts := range b {
		out[series] = map[float64]float64{}
		for le, v := range counts {
			out[series][le] = v - base[series][le]
		}
	}
	return out
}

// quantiles estimates each series' quantiles, in series order; series with
// no observations are left out.
func (b histogramBuckets) quantiles() []histogramQuantiles {
	var out []histogramQuantiles
	for series, counts := range b {
		if q, ok := quantilesOf(series, counts); ok {
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
	return fmt.Sprintf("idle event→bundle p99 %s, create→bundle p50 %s p99 %s, event→bundle p50 %s p99 %s, "+
		"CPU %s/container (%s net of periodic probes), peak RSS %s, ready %s, resync CPU %s, took %s",
		quantileOr(r.idle.eventToBundle, 0.99),
		ms(percentile(r.storm.createToBundle, 0.5)), ms(percentile(r.storm.createToBundle, 0.99)),
		ms(percentile(r.storm.eventToBundle, 0.5)), ms(percentile(r.storm.eventToBundle, 0.99)),
		ms(r.storm.cpu/time.Duration(r.N)), ms(r.storm.probesExcluded(r.N)/time.Duration(r.N)), mib(r.storm.peakRSS),
		ms(r.restart.ready), secs(r.restart.withResync-r.restart.baseline), r.wall.Round(time.Second))
}

// quantileOr is the p-quantile of ds, or "none" if ds is empty.
func quantileOr(ds []time.Duration, p float64) string {
	if len(ds) == 0 {
		return "none"
	}
	return ms(percentile(ds, p))
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
	if addr := os.Getenv("STORM_PPROF"); addr != "" {
		fmt.Fprintf(&b, "- runtime profiles served on %s (STORM_PPROF), GODEBUG=%q: figures taken while profiling are not comparable with others\n",
			addr, os.Getenv("GODEBUG"))
	}
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
	fmt.Fprintf(&b, "- controller on the host, observe mode, probe interval %s (\"periodic probes off\": %s, so probes come only from events), default workers; "+
		"one compose project, one service per container; all N created, then all started, %d calls in flight\n",
		stormProbeInterval, eventsOnlyProbeInterval, stormConcurrency)
	fmt.Fprintf(&b, "- whole run: %s\n\n", wall.Round(time.Second))
	renderStormTable(&b, rows)
	renderIdleTable(&b, rows)
	renderRatios(&b, rows)
	renderDetails(&b, rows)
	b.WriteString(stormLegend)
	return b.String()
}

func renderStormTable(b *strings.Builder, rows []stormRow) {
	b.WriteString("| N | controller | create → bundle p50 / p99 | event → bundle p50 / p99 | event → bundle, controller's histogram p50 / p99 | " +
		"CPU per container | probes / reconciles per container | steady CPU per container per 30 s | storm CPU per container, periodic probes excluded (derived) | " +
		"peak RSS | ready after restart | CPU in 5 s after restart | resync CPU | status API time / size | last create → last bundle | ERROR lines |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		s, n := r.storm, time.Duration(r.N)
		fmt.Fprintf(b, "| %d | %s | %s / %s | %s / %s | %s | %s | %.1f / %.1f | %s | %s | %s | %s | %s | %s | %s / %s | %s | %d |\n", r.N, r.controller,
			ms(percentile(s.createToBundle, 0.5)), ms(percentile(s.createToBundle, 0.99)),
			ms(percentile(s.eventToBundle, 0.5)), ms(percentile(s.eventToBundle, 0.99)),
			productCell(r.product), ms(s.cpu/n), s.probes/float64(r.N), s.reconciles/float64(r.N),
			ms(s.steady/n), ms(s.probesExcluded(r.N)/n), mib(s.peakRSS),
			secs(r.restart.ready), secs(r.restart.cpu5s), secs(r.restart.withResync-r.restart.baseline),
			ms(r.status.median), kib(r.status.size), ms(s.lastBundle.Sub(s.lastCreate)), r.errors)
	}
}

// renderIdleTable is the idle phase's latencies, one row per storm.
func renderIdleTable(b *strings.Builder, rows []stormRow) {
	if !slices.ContainsFunc(rows, func(r stormRow) bool { return len(r.idle.eventToBundle) > 0 }) {
		b.WriteString("\nIdle phase: off (STORM_IDLE=0).\n")
		return
	}
	fmt.Fprintf(b, "\nIdle: before each storm, containers created one at a time, each once the previous one's bundle landed and %d ms more:\n\n", idlePause.Milliseconds())
	b.WriteString("| N | controller | idle containers | create → bundle p50 / p99 / max | event → bundle p50 / p99 / max | event → bundle, controller's histogram p50 / p99 |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(b, "| %d | %s | %d | %s | %s | %s |\n", r.N, r.controller, len(r.idle.eventToBundle),
			spread(r.idle.createToBundle), spread(r.idle.eventToBundle), productCell(r.idle.histogram.quantiles()))
	}
}

// spread is p50 / p99 / max of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "none"
	}
	return fmt.Sprintf("%s / %s / %s", ms(percentile(ds, 0.5)), ms(percentile(ds, 0.99)), ms(percentile(ds, 1)))
}

// renderRatios is each N's CPU per container against the smallest N's of
// the same controller.
func renderRatios(b *strings.Builder, rows []stormRow) {
	b.WriteString("\nCPU per container against the smallest N of the same controller:\n\n")
	b.WriteString("| controller | N | CPU per container | × smallest N | periodic probes excluded (derived) | × smallest N |\n")
	b.WriteString("|---|---|---|---|---|---|\n")
	var labels []string
	for _, r := range rows {
		if !slices.Contains(labels, r.controller) {
			labels = append(labels, r.controller)
		}
	}
	for _, label := range labels {
		var mine []stormRow
		for _, r := range rows {
			if r.controller == label {
				mine = append(mine, r)
			}
		}
		slices.SortStableFunc(mine, func(x, y stormRow) int { return x.N - y.N })
		base := mine[0]
		raw0, net0 := base.storm.cpu/time.Duration(base.N), base.storm.probesExcluded(base.N)/time.Duration(base.N)
		for _, r := range mine {
			raw, net := r.storm.cpu/time.Duration(r.N), r.storm.probesExcluded(r.N)/time.Duration(r.N)
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s |\n", label, r.N, ms(raw), ratio(raw, raw0), ms(net), ratio(net, net0))
		}
	}
}

func ratio(d, base time.Duration) string {
	if base <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", float64(d)/float64(base))
}

func renderDetails(b *strings.Builder, rows []stormRow) {
	b.WriteString("\nDetails:\n\n")
	for _, r := range rows {
		s, rs := r.storm, r.restart
		fmt.Fprintf(b, "- N=%d, %s: storm CPU %s over %s (first create → queue drained; first create → last bundle %s, → last start %s); "+
			"containers ran %s in all inside that window, so periodic probes excluded = %s − %s × %s / (%d × %s) = %s; "+
			"restart's pass drained in %s, using %s of CPU; resync at R=%s, window [R-2s, R+%s]: %s with the resync, %s without; "+
			"status API max %s; controller's histogram: %s (storm), %s (idle); load %s and %d other containers at the start; took %s\n",
			r.N, r.controller, secs(s.cpu), secs(s.window), secs(s.lastBundle.Sub(s.start)), secs(s.lastStart.Sub(s.start)),
			secs(s.running), secs(s.cpu), secs(s.steady), secs(s.running), r.N, secs(stormProbeInterval), secs(s.probesExcluded(r.N)),
			secs(rs.drain), secs(rs.drainCPU), rs.resyncAt, rs.resyncWindow,
			secs(rs.withResync), secs(rs.baseline), ms(r.status.max), productName(r.product), productName(r.idle.histogram.quantiles()),
			r.load, r.others, r.wall.Round(time.Second))
	}
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
- CPU per container: the controller process's utime+stime (/proc/<pid>/stat) from the first create until its queue drained (under a tenth of a core for 1 s), divided by N. Peak RSS: VmHWM at that moment. The engine here starts a few containers a second, so a storm of 1,000 lasts several probe intervals and its CPU includes probes of the containers already running: steady CPU per container is the CPU of the probe interval right after the storm, divided by N, to tell the two apart. With periodic probes off (STORM_PERIODIC=off or both) there are none to tell apart: the CPU per container is what the controller spends on each container's create and start (its issuance, reconciles and probes), measured, not derived.
- probes / reconciles per container: the controller's crank_security_probe_duration_seconds_count and crank_security_reconcile_total summed over their labels, read once as its queue drained, divided by N: the work behind the CPU (idle-phase containers' included).
- ready after restart: SIGTERM, a new process over the same state, time from its start to the first /readyz 200. CPU in 5 s: the new process's CPU in its first 5 s.
- resync CPU: the controller is restarted twice more with probes an hour apart (so none fall in the window), identically except that the second has a resync interval R just after the restart's pass over every container drained; resync CPU is the second's CPU minus the first's over the same window around R (both measured from readiness), so the restart's own work cancels out. It is whatever the controller does when its resync interval comes round, the first time after a start. The details give both figures, so the noise can be judged, and the CPU of the restart's own pass.
- storm CPU per container, periodic probes excluded: derived, not measured. (storm CPU − steady × Σᵢ rᵢ / (N × 30 s)) / N, never below zero, where steady is the CPU of the probe interval after the storm (all N running) and rᵢ is how long container i ran inside the storm window (from its ContainerStart returning until the queue drained); the details give each term. It supposes a container running during the storm costs what it costs in a settled probe interval (its periodic probe, and its share of the timers), and takes that out; the starts' reconciles and their first probes stay in.
- × smallest N: a figure divided by the same figure at the smallest N run with the same controller.
- idle: before each storm, once the controller has been quiet for 1 s, containers (services idle000, …, never started: the create is what the controller issues on) are created one at a time, each once the previous one's bundle landed and 300 ms more, so every create finds the controller idle. create → bundle and event → bundle are taken as in the storm. The idle containers are then removed and the controller left to settle, so the storm has the same N and the same engine as without them. The controller's histogram in that table is what it counted by the end of the phase; in the first table it is what it counted by the end of the storm less that, the storm's alone.
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
