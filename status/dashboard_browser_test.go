package status

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// These tests drive a real headless Chromium at the dashboard, so the
// script's rendering (not only the server's) is proven. Under CI=true a
// missing browser fails the test; elsewhere it skips with a message. They
// run one browser at a time: the virtual time budget does not wait for a
// fetch that a loaded machine answers late.

// browser returns the path of a Chromium-family browser.
func browser(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no chromium, chromium-browser or google-chrome in PATH (Debian: apt-get install -y chromium)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// runBrowser runs the browser headless with args and returns its stdout.
func runBrowser(t *testing.T, args ...string) string {
	t.Helper()
	bin := browser(t)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	home := t.TempDir()
	base := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--disable-extensions", "--disable-background-networking", "--user-data-dir=" + filepath.Join(home, "profile"),
	}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+home)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\nstderr:\n%s", bin, args, err, stderr.String())
	}
	return stdout.String()
}

// dumpDOM loads path from srv in the browser, lets budgetMS of virtual time
// pass (timers and fetches run in it), and returns the DOM.
func dumpDOM(t *testing.T, srv *httptest.Server, path string, budgetMS int) string {
	t.Helper()
	return runBrowser(t, fmt.Sprintf("--virtual-time-budget=%d", budgetMS), "--window-size=1400,900", "--dump-dom", srv.URL+path)
}

// renderedByScript fails the test unless the script rendered dom.
func renderedByScript(t *testing.T, dom string) {
	t.Helper()
	if !strings.Contains(dom, `data-rendered="js"`) {
		t.Fatalf("the script did not render the table (no data-rendered=\"js\"); DOM:\n%s", dom)
	}
}

func TestDashboardInBrowser(t *testing.T) {
	// The first Records call (the page itself) sees an empty stack; the
	// script's fetch sees all six services. Every row in the DOM was
	// therefore rendered by the script.
	src := &fakeSource{first: []state.Record{}, recs: demoStack(), sum: devSummary()}
	srv := httptest.NewServer(newTestHandler(src))
	defer srv.Close()

	dom := dumpDOM(t, srv, "/", 5000)
	renderedByScript(t, dom)
	groups := groupsOf(dom)
	var order []string
	for _, g := range groups {
		order = append(order, g.service)
	}
	want := []string{"image-classifier", "email-classifier", "document-converter", "email-parser", "platform", "streaming"}
	if !slices.Equal(order, want) {
		t.Errorf("service order: got %v, want %v", order, want)
	}
	if img := groups[0].html; !strings.Contains(img, `class="group drift degraded not-ready"`) || !strings.Contains(img, ">DRIFT<") ||
		!strings.Contains(img, ">DEGRADED<") || strings.Count(img, `class="mark act-restart res-ok"`) != 3 {
		t.Errorf("image-classifier row is not marked drifted and degraded with its three restarts:\n%s", img)
	}
	for _, w := range []string{`data-level="plain"><b>1</b> plain`, `<span id="ready" class="ready bad"`, ">ready for production: 5/7<",
		`<li data-service="email-classifier">`, "7 containers in 6 services", `<tr data-expiry="document-converter">`} {
		if !strings.Contains(dom, w) {
			t.Errorf("the script did not render %s", w)
		}
	}
}

// TestDashboardHistoryInBrowser: the script draws the hour of a rebuild as
// the server does: bands, action marks, the CA phase, the readiness list
// and the expiry view, soonest first.
func TestDashboardHistoryInBrowser(t *testing.T) {
	src := &fakeSource{first: []state.Record{}, recs: rebuildStory(), sum: rolloverSummary()}
	srv := httptest.NewServer(newTestHandler(src))
	defer srv.Close()
	dom := dumpDOM(t, srv, "/", 5000)
	renderedByScript(t, dom)
	_, server := get(t, newTestHandler(&fakeSource{recs: rebuildStory(), sum: rolloverSummary()}), "GET", "/")

	byService := func(html string) map[string]string {
		m := map[string]string{}
		for _, g := range groupsOf(html) {
			m[g.service] = g.html
		}
		return m
	}
	got, want := byService(dom), byService(server)
	if len(got) != 6 {
		t.Fatalf("got %d services, want 6", len(got))
	}
	timelineOf := regexp.MustCompile(`(?s)<svg class="tl".*?</svg></td>`)
	for svc, w := range want {
		// The script's markup of the timeline is the server's: the same
		// bands at the same places, the same marks with the same titles.
		if g, w := timelineOf.FindString(got[svc]), timelineOf.FindString(w); normalizeSVG(g) != normalizeSVG(w) {
			t.Errorf("%s: the script's timeline differs from the server's:\n got %s\nwant %s", svc, normalizeSVG(g), normalizeSVG(w))
		}
	}
	for _, w := range []string{`class="mark act-relabel res-error"`, `<line class="ca-mark"`, `<rect class="band lvl-down"`} {
		if !strings.Contains(got["image-classifier"], w) {
			t.Errorf("image-classifier lacks %s", w)
		}
	}
	for _, w := range []string{">ready for production: 6/8<", `<code>label-below-minimum</code>`, `data-k="rollover">overlap 6/8</dd>`,
		"soonest: streaming, 12 d"} {
		if !strings.Contains(dom, w) {
			t.Errorf("the script did not render %s", w)
		}
	}
}

// normalizeSVG makes the browser's serialisation of an SVG comparable with
// the template's: closed empty elements, the same attribute order.
func normalizeSVG(s string) string {
	s = regexp.MustCompile(`<(line|rect|path)([^>]*?)\s*/>`).ReplaceAllString(s, "<$1$2></$1>")
	return regexp.MustCompile(`<(\w+) ([^>]*)>`).ReplaceAllStringFunc(s, func(tag string) string {
		m := regexp.MustCompile(`<(\w+) ([^>]*)>`).FindStringSubmatch(tag)
		attrs := regexp.MustCompile(`[\w-]+="[^"]*"`).FindAllString(m[2], -1)
		slices.Sort(attrs)
		return "<" + m[1] + " " + strings.Join(attrs, " ") + ">"
	})
}

// TestDashboardFilterInBrowser drives the filter, sort and grouping through
// the URL's fragment, which the toolbar keeps in step with its controls.
func TestDashboardFilterInBrowser(t *testing.T) {
	srv := httptest.NewServer(NewHandler(&fakeSource{recs: rebuildStory(), sum: rolloverSummary()}, WithClock(func() time.Time { return t0 })))
	defer srv.Close()
	tests := map[string]struct {
		fragment string
		// wantGroups are the services listed, in order; wantRows how many
		// containers' rows each shows; wantShown the toolbar's count.
		wantGroups []string
		wantRows   map[string]int
		wantShown  string
	}{
		"should list problems first and open no healthy group by default": {
			wantGroups: []string{"image-classifier", "legacy-reporter", "streaming", "document-converter", "email-parser", "platform"},
			wantRows:   map[string]int{}, wantShown: "8 containers in 6 services",
		},
		"should keep only the drifted, opened": {
			fragment: "#drift=1", wantGroups: []string{"image-classifier"}, wantRows: map[string]int{"image-classifier": 1},
			wantShown: "1 of 8 containers in 1 of 6 services",
		},
		"should find containers by name, and open their service": {
			fragment: "#q=parser-2", wantGroups: []string{"email-parser"}, wantRows: map[string]int{"email-parser": 1},
			wantShown: "1 of 8 containers in 1 of 6 services",
		},
		"should find containers by a finding or readiness code": {
			fragment: "#q=label-below", wantGroups: []string{"legacy-reporter"}, wantRows: map[string]int{"legacy-reporter": 1},
			wantShown: "1 of 8 containers in 1 of 6 services",
		},
		"should keep one level": {
			fragment: "#level=plain", wantGroups: []string{"image-classifier", "legacy-reporter"},
			wantRows: map[string]int{"image-classifier": 1, "legacy-reporter": 1}, wantShown: "2 of 8 containers in 2 of 6 services",
		},
		"should sort by name": {
			fragment:   "#sort=name",
			wantGroups: []string{"document-converter", "email-parser", "image-classifier", "legacy-reporter", "platform", "streaming"},
			wantRows:   map[string]int{}, wantShown: "8 containers in 6 services",
		},
		"should sort by the soonest expiry": {
			fragment:   "#sort=expiry",
			wantGroups: []string{"streaming", "email-parser", "image-classifier", "legacy-reporter", "platform", "document-converter"},
			wantRows:   map[string]int{}, wantShown: "8 containers in 6 services",
		},
		"should open every group": {
			fragment:   "#open=all",
			wantGroups: []string{"image-classifier", "legacy-reporter", "streaming", "document-converter", "email-parser", "platform"},
			wantRows: map[string]int{"image-classifier": 1, "legacy-reporter": 1, "streaming": 1, "document-converter": 1,
				"email-parser": 3, "platform": 1},
			wantShown: "8 containers in 6 services",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			dom := dumpDOM(t, srv, "/"+tc.fragment, 3000)
			renderedByScript(t, dom)
			var order []string
			rows := map[string]int{}
			for _, g := range groupsOf(dom) {
				order = append(order, g.service)
				if n := strings.Count(g.html, `<tr class="row`); n > 0 {
					rows[g.service] = n
				}
			}
			if !slices.Equal(order, tc.wantGroups) {
				t.Errorf("services: got %v, want %v", order, tc.wantGroups)
			}
			if !maps.Equal(rows, tc.wantRows) {
				t.Errorf("containers' rows: got %v, want %v", rows, tc.wantRows)
			}
			if !strings.Contains(dom, `<span id="shown" class="muted">`+tc.wantShown+`</span>`) {
				t.Errorf("toolbar count: want %q in\n%s", tc.wantShown, between(t, dom, `<span id="shown"`, "</span>"))
			}
		})
	}
}

// TestDashboardThousandContainersInBrowser: a thousand containers render
// grouped, the troubled services first, each healthy group closed, and a
// refresh (fetch, parse, draw) takes well under the refresh interval.
func TestDashboardThousandContainersInBrowser(t *testing.T) {
	recs := bigStack(1000, troubled)
	src := &fakeSource{first: []state.Record{}, recs: recs, sum: devSummary()}
	srv := httptest.NewServer(newTestHandler(src))
	defer srv.Close()
	// Virtual time skips the idle waits between refreshes, so the real
	// time a run takes beyond one with a single refresh is what four more
	// refreshes cost.
	start := time.Now()
	dumpDOM(t, srv, "/", 1000)
	one := time.Since(start)
	start = time.Now()
	dom := dumpDOM(t, srv, "/", 21000)
	perRefresh := (time.Since(start) - one) / 4
	renderedByScript(t, dom)
	if n, _ := strconv.Atoi(attr(dom, "data-refreshes")); n != 5 {
		t.Errorf("got %d refreshes in 21 s, want 5", n)
	}
	rep := Build(recs, devSummary(), t0, Query{})
	groups := groupsOf(dom)
	if len(groups) != len(rep.Services) {
		t.Fatalf("got %d services, want %d", len(groups), len(rep.Services))
	}
	if g := groups[0]; g.service != "svc-0005" || !strings.Contains(g.html, "below-floor") {
		t.Errorf("first service: got %s, want svc-0005, below its floor", g.service)
	}
	if want := fmt.Sprintf("1000 containers in %d services", len(rep.Services)); !strings.Contains(dom, want) {
		t.Errorf("toolbar does not say %q", want)
	}
	rows, wantRows := strings.Count(dom, `<tr class="row`), 0
	for _, g := range pageGroups(rep) {
		if g.Expanded {
			wantRows += len(g.Containers)
		}
	}
	if rows != wantRows {
		t.Errorf("got %d containers' rows, want %d: only those of the replicated services with a problem", rows, wantRows)
	}
	t.Logf("1,000 containers in %d services, %d containers' rows open: a refresh takes %s", len(groups), rows, perRefresh.Round(time.Millisecond))
	if perRefresh > DefaultRefresh {
		t.Errorf("a refresh takes %s, longer than the refresh interval (%s)", perRefresh, DefaultRefresh)
	}
}

// rebuildSource serves a scripted rebuild: each Records call moves one step
// on (the page's own render is step 0) and the last step repeats. Its
// clock follows, one refresh interval per step.
type rebuildSource struct {
	Source // unexpected calls panic

	mu    sync.Mutex
	steps [][]state.Record
	calls int
	sum   Summary
}

func (s *rebuildSource) Records() ([]state.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	step := s.steps[min(s.calls, len(s.steps)-1)]
	s.calls++
	return step, nil
}

func (s *rebuildSource) Summary() Summary { return s.sum }

func (s *rebuildSource) now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return t0.Add(time.Duration(s.calls) * DefaultRefresh)
}

// rebuildSteps takes base through a restart of the container named
// container of service: down, back at plain, then mtls with a new bundle.
func rebuildSteps(base []state.Record, service, container string) [][]state.Record {
	step := func(f func(r *state.Record)) []state.Record {
		out := slices.Clone(base)
		for i := range out {
			if out[i].Service == service && out[i].ContainerName == container {
				r := out[i]
				r.Transitions, r.History = slices.Clone(r.Transitions), slices.Clone(r.History)
				f(&r)
				out[i] = r
			}
		}
		return out
	}
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	down := func(r *state.Record) {
		r.AddEvent(state.Event{At: sec(3), Action: "restart", Result: "ok", Reason: "bundle newer than the process"})
		r.AddTransition(state.Transition{At: sec(4), From: r.ObservedLevel, To: "down", Cause: "after restart"})
		r.ObservedLevel = "down"
		r.Level.Drift, r.Level.BelowFloor = true, true
	}
	plain := func(r *state.Record) {
		down(r)
		r.AddTransition(state.Transition{At: sec(9), From: "down", To: "plain", Cause: "after restart"})
		r.ObservedLevel, r.Level.BelowFloor = "plain", false
	}
	mtls := func(r *state.Record) {
		plain(r)
		r.AddEvent(state.Event{At: sec(12), Action: "issue", Result: "ok", Reason: "renew-due"})
		r.AddTransition(state.Transition{At: sec(14), From: "plain", To: "mtls", Cause: "probe"})
		r.ObservedLevel, r.Level.Drift = "mtls", false
	}
	return [][]state.Record{base, step(down), step(plain), step(mtls)}
}

// TestDashboardRefreshesDuringARebuild: while a container restarts and comes
// back, the page refreshes every 5 s, keeps the operator's filter, and ends
// showing the last state with the whole episode on the timeline; at seven
// containers and at a thousand.
func TestDashboardRefreshesDuringARebuild(t *testing.T) {
	tests := map[string]struct {
		base               []state.Record
		service, container string
		fragment           string
	}{
		"should follow a replica of the demo stack": {
			base: demoStack(), service: "email-parser", container: "crank-email-parser-1", fragment: "#q=email-parser",
		},
		"should follow one container among a thousand": {
			base: bigStack(1000, troubled), service: "svc-0002", container: "crank-svc-0002-2", fragment: "#q=svc-0002",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			src := &rebuildSource{steps: rebuildSteps(tc.base, tc.service, tc.container), sum: devSummary()}
			srv := httptest.NewServer(NewHandler(src, WithClock(src.now)))
			defer srv.Close()
			// Four refreshes fit in 16 s: at load, then every 5 s.
			dom := dumpDOM(t, srv, "/"+tc.fragment, 16000)
			renderedByScript(t, dom)
			if n, _ := strconv.Atoi(attr(dom, "data-refreshes")); n < 4 {
				t.Errorf("got %d refreshes in 16 s, want 4 (one every %s)", n, DefaultRefresh)
			}
			groups := groupsOf(dom)
			if len(groups) != 1 || groups[0].service != tc.service {
				t.Fatalf("got %d services (first %v), want only %s: the filter must outlive the refreshes", len(groups), groups, tc.service)
			}
			var row string
			for _, m := range regexp.MustCompile(`(?s)<tr class="row[^"]*" data-service="[^"]+" data-container="([^"]+)".*?</tr>`).FindAllStringSubmatch(groups[0].html, -1) {
				if m[1] == tc.container {
					row = m[0]
				}
			}
			for _, w := range []string{`class="row"`, `<span class="lvl lvl-mtls">mtls</span>`, `<rect class="band lvl-down"`, `<rect class="band lvl-plain"`,
				`class="mark act-restart res-ok"`, `class="mark act-issue res-ok"`, "12:00:12 renew ok: renew-due"} {
				if !strings.Contains(row, w) {
					t.Errorf("%s's row after the rebuild lacks %s:\n%s", tc.container, w, row)
				}
			}
		})
	}
}

// attr is the value of the first name="..." in html.
func attr(html, name string) string {
	m := regexp.MustCompile(name + `="([^"]*)"`).FindStringSubmatch(html)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestDashboardScreenshot writes the README's screenshots from the
// fixtures: docs/dashboard.png (the demo stack), docs/dashboard-history.png
// (an hour of a rebuild during a CA rollover) and docs/dashboard-1000.png
// (a thousand containers). Run it on purpose:
//
//	UPDATE_SCREENSHOT=1 go test ./status -run TestDashboardScreenshot
func TestDashboardScreenshot(t *testing.T) {
	if os.Getenv("UPDATE_SCREENSHOT") != "1" {
		t.Skip("set UPDATE_SCREENSHOT=1 to write docs/dashboard*.png")
	}
	shots := []struct {
		file   string
		src    Source
		path   string
		height int
	}{
		{"dashboard.png", &fakeSource{recs: demoStack(), sum: devSummary()}, "/", 820},
		{"dashboard-history.png", &fakeSource{recs: rebuildStory(), sum: rolloverSummary()}, "/#open=email-parser", 1010},
		{"dashboard-1000.png", &fakeSource{recs: bigStack(1000, troubled), sum: devSummary()}, "/#open=none", 1000},
	}
	for _, s := range shots {
		srv := httptest.NewServer(newTestHandler(s.src))
		out, err := filepath.Abs(filepath.Join("..", "docs", s.file))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			t.Fatal(err)
		}
		runBrowser(t, "--hide-scrollbars", "--virtual-time-budget=3000", fmt.Sprintf("--window-size=1400,%d", s.height), "--screenshot="+out, srv.URL+s.path)
		srv.Close()
		if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
			t.Fatalf("no screenshot at %s: %v", out, err)
		}
		t.Logf("wrote %s", out)
	}
}
