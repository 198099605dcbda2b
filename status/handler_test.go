package status

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/state"
)

func newTestHandler(src Source) http.Handler {
	return NewHandler(src, WithClock(func() time.Time { return t0 }))
}

// get serves one request and returns the response and its body.
func get(t *testing.T, h http.Handler, method, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	resp := rec.Result()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return resp, string(body)
}

func TestHandlerRoutes(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		src    *fakeSource
		method string
		path   string
		// wantCode and wantType are the status and Content-Type media type;
		// check, if set, inspects the body.
		wantCode int
		wantType string
		check    func(t *testing.T, body string)
	}{
		"should serve the whole stack as JSON": {
			src: &fakeSource{recs: demoStack(), sum: devSummary()}, method: "GET", path: "/api/v1/status",
			wantCode: 200, wantType: "application/json",
			check: func(t *testing.T, body string) {
				var rep Report
				mustDecode(t, body, &rep)
				if rep.APIVersion != "v1" || len(rep.Containers) != 7 || rep.Summary.Mode != "enforce" ||
					rep.Summary.Environment != "development" || rep.Summary.Counts["plain"] != 1 {
					t.Errorf("got %+v, want v1 with 7 containers, enforce, development, one plain", rep.Summary)
				}
				for _, field := range []string{`"ca_not_after"`, `"generated_at"`, `"below_floor"`, `"days_left"`, `"budget_left"`,
					`"timeline_since"`, `"production":{"minimum":"mtls","ready":5,"total":7,"verdict":"ready for production: 5/7"`,
					`"production":{"floor":"mtls","ready":false,"findings":[{"code":"below-desired"`, `"timeline":[{"level":"mtls"`,
					`"services":[{"service":"document-converter","containers":1`, `"expiry":{"bundle_not_after":`} {
					if !strings.Contains(body, field) {
						t.Errorf("body lacks %s", field)
					}
				}
			},
		},
		"should serve every container of one service": {
			src: &fakeSource{recs: demoStack(), sum: devSummary()}, method: "GET", path: "/api/v1/status/email-parser",
			wantCode: 200, wantType: "application/json",
			check: func(t *testing.T, body string) {
				var sr ServiceReport
				mustDecode(t, body, &sr)
				if sr.APIVersion != "v1" || sr.Service != "email-parser" || len(sr.Containers) != 2 {
					t.Errorf("got %s with %d containers, want email-parser with 2", sr.Service, len(sr.Containers))
				}
			},
		},
		"should give a service's verdict over its containers only": {
			src: &fakeSource{recs: demoStack(), sum: devSummary()}, method: "GET", path: "/api/v1/status/image-classifier?since=1h",
			wantCode: 200, wantType: "application/json",
			check: func(t *testing.T, body string) {
				var sr ServiceReport
				mustDecode(t, body, &sr)
				if sr.Production.Verdict != "ready for production: 0/1" || len(sr.Containers[0].History) != 3 {
					t.Errorf("got verdict %q and %d events, want 0/1 and the hour's 3 restarts", sr.Production.Verdict, len(sr.Containers[0].History))
				}
			},
		},
		"should answer a bad query with a JSON 400": {
			src: &fakeSource{recs: demoStack(), sum: devSummary()}, method: "GET", path: "/api/v1/status?recent=lots",
			wantCode: 400, wantType: "application/json", check: wantError(`recent="lots"`),
		},
		"should answer a bad query on a service with a JSON 400": {
			src: &fakeSource{recs: demoStack(), sum: devSummary()}, method: "GET", path: "/api/v1/status/platform?since=tomorrow",
			wantCode: 400, wantType: "application/json", check: wantError(`since="tomorrow"`),
		},
		"should answer an unknown service with a JSON 404": {
			src: &fakeSource{recs: demoStack(), sum: devSummary()}, method: "GET", path: "/api/v1/status/nope",
			wantCode: 404, wantType: "application/json", check: wantError(`service "nope"`),
		},
		"should answer an unknown API path with a JSON 404": {
			src: &fakeSource{sum: devSummary()}, method: "GET", path: "/api/v2/status",
			wantCode: 404, wantType: "application/json", check: wantError("no such endpoint"),
		},
		"should refuse a write with a JSON 405": {
			src: &fakeSource{sum: devSummary()}, method: "POST", path: "/api/v1/status",
			wantCode: 405, wantType: "application/json", check: wantError("read-only"),
		},
		"should report a failing source as a JSON 500": {
			src: &fakeSource{err: errors.New("database locked"), sum: devSummary()}, method: "GET", path: "/api/v1/status",
			wantCode: 500, wantType: "application/json", check: wantError("database locked"),
		},
		"should still send the dashboard, with the error, when the source fails": {
			src: &fakeSource{err: errors.New("database locked"), sum: devSummary()}, method: "GET", path: "/",
			wantCode: 500, wantType: "text/html",
			check: func(t *testing.T, body string) {
				if !strings.Contains(body, "status unavailable: listing state records: database locked") {
					t.Errorf("dashboard does not show the error")
				}
			},
		},
		"should serve the dashboard at the root": {
			src: &fakeSource{recs: demoStack(), sum: devSummary()}, method: "GET", path: "/",
			wantCode: 200, wantType: "text/html",
		},
		"should not serve a dashboard at other paths": {
			src: &fakeSource{sum: devSummary()}, method: "GET", path: "/index.html", wantCode: 404, wantType: "text/plain",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp, body := get(t, newTestHandler(tc.src), tc.method, tc.path)
			if resp.StatusCode != tc.wantCode {
				t.Errorf("status: got %d, want %d (body %s)", resp.StatusCode, tc.wantCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.wantType) {
				t.Errorf("Content-Type: got %q, want %s", ct, tc.wantType)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control: got %q, want no-store", cc)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
}

func TestDashboardMarksDrift(t *testing.T) {
	t.Parallel()
	resp, body := get(t, newTestHandler(&fakeSource{recs: demoStack(), sum: devSummary()}), "GET", "/")
	if resp.StatusCode != 200 {
		t.Fatalf("status: got %d, want 200", resp.StatusCode)
	}
	groups := groupsOf(body)
	var order []string
	for _, g := range groups {
		order = append(order, g.service)
	}
	want := []string{"image-classifier", "email-classifier", "document-converter", "email-parser", "platform", "streaming"}
	if !slices.Equal(order, want) {
		t.Errorf("service order: got %v, want %v (drifted, then not ready for production, then findings, then by name)", order, want)
	}
	img := groups[0].html
	if !strings.Contains(img, `class="group drift degraded not-ready"`) || !strings.Contains(img, ">DRIFT<") || !strings.Contains(img, ">DEGRADED<") {
		t.Errorf("image-classifier row is not marked drifted and degraded:\n%s", img)
	}
	if g := groups[4]; g.service != "platform" || !strings.Contains(g.html, `class="group"`) {
		t.Errorf("platform row is marked:\n%s", g.html)
	}
	if !strings.Contains(body, `data-rendered="server"`) {
		t.Errorf("table lacks data-rendered=\"server\"")
	}
}

func TestDashboardMarksBelowFloor(t *testing.T) {
	t.Parallel()
	recs := []state.Record{record("platform", "p-1", observed("tls"), desired("mtls", "mtls"), drifted(true))}
	_, body := get(t, newTestHandler(&fakeSource{recs: recs, sum: devSummary()}), "GET", "/")
	if g := groupsOf(body); len(g) != 1 || !strings.Contains(g[0].html, "below-floor") || !strings.Contains(g[0].html, "BELOW FLOOR") {
		t.Errorf("row is not marked below floor:\n%v", g)
	}
	if !strings.Contains(body, "1 container(s) below their floor") {
		t.Errorf("no below-floor alert in the header")
	}
}

func TestDashboardShowsTheHour(t *testing.T) {
	t.Parallel()
	h := NewHandler(&fakeSource{recs: rebuildStory(), sum: rolloverSummary()}, WithClock(func() time.Time { return t0 }))
	_, body := get(t, h, "GET", "/")
	groups := map[string]string{}
	for _, g := range groupsOf(body) {
		groups[g.service] = g.html
	}
	tests := map[string]struct {
		service string
		// want are substrings of the service's row (with its containers'
		// rows when it is expanded).
		want []string
	}{
		"should draw the drifted service's hour as bands, with its restarts and the failed relabel": {
			service: "image-classifier",
			want: []string{`<rect class="band lvl-unknown" x="0.00%" width="16.67%"`, `<rect class="band lvl-mtls" x="16.67%" width="53.33%"`, `<rect class="band lvl-plain" x="70.00%"`,
				`<rect class="band lvl-down"`, `class="mark act-restart res-ok" x="73.33%"`, `class="mark act-relabel res-error" x="95.00%"`,
				`<title>11:57:00 relabel error: restart budget spent: recreate with the observed level</title>`},
		},
		"should draw a service's replicas as one band of the worst level, with their marks": {
			service: "email-parser",
			want: []string{`<rect class="band lvl-unknown" x="0.00%" width="41.67%"`, `<rect class="band lvl-down" x="65.00%" width="1.67%"`,
				`<rect class="band lvl-down" x="80.00%" width="3.33%"`, `class="mark act-issue res-ok" x="40.00%"`, `<title>11:48:00 restart ok: down for 30s</title>`},
		},
		"should name a renewal as such": {
			service: "document-converter",
			want:    []string{`<title>11:20:00 renew ok: renew-due</title>`, `class="mark act-signal res-ok" x="35.00%"`},
		},
		"should mark the CA rollover phase's start on every timeline": {
			service: "platform",
			want:    []string{`<line class="ca-mark" x1="58.33%" x2="58.33%" y1="0" y2="24"><title>11:35:00 CA rollover: overlap</title></line>`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, w := range tc.want {
				if !strings.Contains(groups[tc.service], w) {
					t.Errorf("%s lacks %s:\n%s", tc.service, w, groups[tc.service])
				}
			}
		})
	}
	for _, w := range []string{`<span id="ready" class="ready bad"`, ">ready for production: 6/8<",
		`<li data-service="image-classifier"><b>image-classifier</b>`, `<code>label-below-minimum</code>`,
		`<dd data-k="rollover" class="tone-warn">overlap 6/8</dd>`} {
		if !strings.Contains(body, w) {
			t.Errorf("page lacks %s", w)
		}
	}
}

func TestDashboardExpiryView(t *testing.T) {
	t.Parallel()
	h := NewHandler(&fakeSource{recs: rebuildStory(), sum: rolloverSummary()}, WithClock(func() time.Time { return t0 }))
	_, body := get(t, h, "GET", "/")
	re := regexp.MustCompile(`(?s)<tr data-expiry="([^"]+)">.*?</tr>`)
	var order []string
	rows := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		order = append(order, m[1])
		rows[m[1]] = m[0]
	}
	want := []string{"streaming", "email-parser", "image-classifier", "legacy-reporter", "platform", "document-converter"}
	if !slices.Equal(order, want) {
		t.Errorf("expiry order: got %v, want %v (soonest first)", order, want)
	}
	for svc, subs := range map[string][]string{
		"streaming":          {`<rect class="fill tone-warn" x="0" y="3" width="13.33%"`, `<line class="renew" x1="0.00%"`, "2026-03-13", "(12 d)"},
		"document-converter": {`width="99.97%"`, `<line class="renew" x1="66.67%"`, "2026-05-30", "(89 d)"},
	} {
		for _, s := range subs {
			if !strings.Contains(rows[svc], s) {
				t.Errorf("%s expiry row lacks %s:\n%s", svc, s, rows[svc])
			}
		}
	}
	if !strings.Contains(body, `soonest: streaming, 12 d`) {
		t.Errorf("expiry summary does not name the soonest")
	}
}

func TestDashboardOpensAServiceWithAProblemAndSeveralContainers(t *testing.T) {
	t.Parallel()
	recs := []state.Record{
		record("email-parser", "p-1"), record("email-parser", "p-2", observed("plain"), drifted(false)),
		record("platform", "a-1"), record("platform", "a-2"),
	}
	_, body := get(t, newTestHandler(&fakeSource{recs: recs, sum: devSummary()}), "GET", "/")
	rows := rowsOf(body)
	if _, ok := rows["email-parser"]; !ok {
		t.Errorf("email-parser's containers are not shown, want its group open")
	}
	if _, ok := rows["platform"]; ok {
		t.Errorf("platform's containers are shown, want its healthy group closed")
	}
	if !strings.Contains(rows["email-parser"], `data-container="p-2"`) {
		t.Errorf("the drifted replica is not listed first in its group:\n%s", rows["email-parser"])
	}
}

// TestDashboardIsSelfContained: nothing is loaded from anywhere, and the
// CSP hashes admit exactly the inline style and script the page carries.
func TestDashboardIsSelfContained(t *testing.T) {
	t.Parallel()
	resp, body := get(t, newTestHandler(&fakeSource{recs: demoStack(), sum: devSummary()}), "GET", "/")
	// The SVG namespace is a name the script gives createElementNS, never
	// fetched.
	scan := strings.ReplaceAll(body, `"http://www.w3.org/2000/svg"`, `""`)
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<(script|img|iframe)[^>]+src=`), regexp.MustCompile(`(?i)<link`),
		regexp.MustCompile(`(?i)url\(`), regexp.MustCompile(`(?i)@import`), regexp.MustCompile(`https?://`),
	} {
		if m := bad.FindString(scan); m != "" {
			t.Errorf("page loads an external asset: %q", m)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	script := between(t, body, "<script>", "</script>")
	style := between(t, body, "<style>", "</style>")
	if !strings.Contains(csp, "script-src '"+cspHash(script)+"'") {
		t.Errorf("CSP %q does not admit the served script (hash %s)", csp, cspHash(script))
	}
	if !strings.Contains(csp, "style-src '"+cspHash(style)+"'") {
		t.Errorf("CSP %q does not admit the served style (hash %s)", csp, cspHash(style))
	}
}

// TestNoEndpointServesPrivateKeys feeds records made from a real issuance
// and a message that quotes a key, and reads every endpoint.
func TestNoEndpointServesPrivateKeys(t *testing.T) {
	t.Parallel()
	a, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	b, info, err := a.IssueBundle(certs.Identity{Service: "platform", DNSNames: []string{"platform"}}, certs.IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	quoted := "peer said: " + string(b.ServerKey)
	recs := []state.Record{record("platform", "p-1",
		func(r *state.Record) {
			r.Bundle.ServerSerial, r.Bundle.ClientSerial, r.Bundle.NotAfter = info.ServerSerial, info.ClientSerial, info.NotAfter
		},
		probeFindings("not-tls", quoted), bundleFindings(quoted),
		remediation(1, 3, quoted, "restart", t0),
		func(r *state.Record) {
			r.NeedsRestartReason, r.Level.LastPlan = quoted, quoted
			r.AddEvent(state.Event{At: t0, Action: "restart", Result: "ok", Reason: quoted})
			r.AddTransition(state.Transition{At: t0, From: "mtls", To: "plain", Cause: quoted})
		})}
	ca := a.Active().Cert
	sum := devSummary()
	sum.CANotAfter, sum.CASubject = ca.NotAfter, ca.Subject.String()
	h := newTestHandler(&fakeSource{recs: recs, sum: sum})
	for _, path := range []string{"/", "/api/v1/status", "/api/v1/status/platform", "/api/v1/status/nope", "/api/x"} {
		_, body := get(t, h, "GET", path)
		if strings.Contains(body, "PRIVATE KEY") || strings.Contains(body, "-----BEGIN") {
			t.Errorf("GET %s serves PEM material", path)
		}
	}
}

// group is a service's row, as the page lists it.
type group struct{ service, html string }

// groupsOf lists the services' rows in page order, each with the rows of
// its containers when they are shown.
func groupsOf(body string) []group {
	var out []group
	re := regexp.MustCompile(`(?s)<tr class="group[^"]*" data-group="([^"]+)".*?</tr>\s*((?:<tr class="row.*?</tr>\s*)*)`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		out = append(out, group{service: m[1], html: m[0]})
	}
	return out
}

// rowsOf maps data-service to the markup of its first container's row.
func rowsOf(body string) map[string]string {
	rows := map[string]string{}
	re := regexp.MustCompile(`(?s)<tr class="[^"]*" data-service="([^"]+)".*?</tr>`)
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		if _, ok := rows[m[1]]; !ok {
			rows[m[1]] = m[0]
		}
	}
	return rows
}

func between(t *testing.T, s, open, close string) string {
	t.Helper()
	_, rest, ok := strings.Cut(s, open)
	if !ok {
		t.Fatalf("no %s in page", open)
	}
	in, _, ok := strings.Cut(rest, close)
	if !ok {
		t.Fatalf("no %s in page", close)
	}
	return in
}

func mustDecode(t *testing.T, body string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", body, err)
	}
}

func wantError(substr string) func(t *testing.T, body string) {
	return func(t *testing.T, body string) {
		var e ErrorBody
		mustDecode(t, body, &e)
		if !strings.Contains(e.Error, substr) {
			t.Errorf("error: got %q, want it to mention %q", e.Error, substr)
		}
	}
}
