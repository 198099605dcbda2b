package status

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"slices"
	"strings"
	"time"
)

// The dashboard is one self-contained page: no external assets, so it works
// on an air-gapped host and leaks nothing to a CDN. The server renders the
// table once (the page is useful without JavaScript and in a headless
// dump), then dashboard.js fetches /api/v1/status every refresh interval and
// re-renders it with the same markup.

var (
	//go:embed dashboard.html
	dashboardHTML string
	//go:embed dashboard.css
	dashboardCSS string
	//go:embed dashboard.js
	dashboardJS string
)

var dashboardTmpl = template.Must(template.New("dashboard").Funcs(template.FuncMap{
	"days":     daysText,
	"daysTone": daysTone,
	"ago":      ago,
	"rowClass": rowClass,
	"date":     func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"glyph":    glyph,
	"dayPct":   dayPct,
	"renewIn":  renewIn,
}).Parse(dashboardHTML))

// contentSecurityPolicy allows exactly the page's own inline style and
// script (by hash) and fetches to its own origin; nothing else loads.
var contentSecurityPolicy = fmt.Sprintf(
	"default-src 'none'; script-src '%s'; style-src '%s'; connect-src 'self'; img-src 'self' data:; "+
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	cspHash(dashboardJS), cspHash(dashboardCSS))

func cspHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}

// page is what dashboard.html renders.
type page struct {
	Report       Report
	Groups       []pageGroup      // services, problems first
	NotReady     []readinessEntry // what production would refuse, the first notReadyShown
	NotReadyMore int
	Blocking     []codeCount     // the blocking codes, most containers first
	Expiry       []ServiceStatus // soonest bundle expiry first
	ExpiryScale  int             // days the expiry bars span
	Levels       []string        // the four levels, strongest first
	Counted      []string        // order of the count chips: Levels, and unknown when some are
	Error        string
	RefreshMS    int64
	Refresh      time.Duration
	Style        template.CSS
	Script       template.JS
}

var levelNames = []string{"mtls", "tls", "plain", "down"}

// notReadyShown bounds the readiness list: at a thousand containers the
// table's filter finds the rest.
const notReadyShown = 6

func (h *handler) dashboard(w http.ResponseWriter, _ *http.Request) {
	p := page{
		Levels:    levelNames,
		RefreshMS: h.refresh.Milliseconds(),
		Refresh:   h.refresh,
		Style:     template.CSS(dashboardCSS),
		Script:    template.JS(dashboardJS),
	}
	code := http.StatusOK
	// The page marks every action of the window on the timelines, as the
	// script does with its ?since= fetch.
	now := h.now()
	q := Query{Since: now.Add(-DefaultWindow)}
	rep, err := h.build(q, now)
	if err != nil {
		// Still send the page: its script keeps retrying and recovers on
		// its own once the source answers.
		code, p.Error = http.StatusInternalServerError, err.Error()
		rep = Build(nil, h.src.Summary(), now, q)
	}
	p.Report = rep
	p.Groups = pageGroups(rep)
	p.NotReady, p.NotReadyMore = notReady(rep, notReadyShown)
	p.Blocking = blockingCodes(rep.Summary.Production)
	p.Expiry, p.ExpiryScale = expiryOrder(rep.Services), expiryScale(rep.Services)
	p.Counted = levelNames
	if rep.Summary.Counts[LevelUnknown] > 0 {
		p.Counted = append(slices.Clip(p.Counted), LevelUnknown)
	}
	var buf bytes.Buffer
	if err := dashboardTmpl.Execute(&buf, p); err != nil {
		writeError(w, http.StatusInternalServerError, "rendering dashboard: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy)
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(code)
	_, _ = w.Write(buf.Bytes())
}

// The helpers below have twins in dashboard.js; keep them in step.

// glyph is the SVG path of an action's mark, centred on x = 0 above the
// band: restart ▼, signal ●, relabel ◆, issue (or renew) ■.
func glyph(kind string) string {
	switch kind {
	case "restart":
		return "M-4.5 0h9L0 7.5z"
	case "signal":
		return "M-3.6 3.8a3.6 3.6 0 1 0 7.2 0a3.6 3.6 0 1 0-7.2 0z"
	case "relabel":
		return "M0 0L4.2 4L0 8L-4.2 4z"
	case "issue":
		return "M-3.4 0.5h6.8v6.8h-6.8z"
	}
	return "M-1.5 0h3v8h-3z"
}

func daysText(d *int) string {
	if d == nil {
		return "—"
	}
	if *d < 0 {
		return "expired"
	}
	return fmt.Sprintf("%d d", *d)
}

// daysTone colours an expiry: under a week is bad, under a month a warning
// (renewal normally happens with a third of a 90-day lifetime left).
func daysTone(d *int) string {
	switch {
	case d == nil:
		return "muted"
	case *d < 7:
		return "bad"
	case *d < 30:
		return "warn"
	}
	return "ok"
}

// renewIn says when a renewal is due: "in 30 d", or "due" once past.
func renewIn(t, now time.Time) string {
	if d := daysLeft(t, now); *d >= 0 {
		return fmt.Sprintf("in %d d", *d)
	}
	return "due"
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func rowClass(c ContainerStatus) string {
	cls := []string{"row"}
	if c.Drift {
		cls = append(cls, "drift")
	}
	if c.BelowFloor {
		cls = append(cls, "below-floor")
	}
	if c.Remediation.Degraded != "" {
		cls = append(cls, "degraded")
	}
	return strings.Join(cls, " ")
}
