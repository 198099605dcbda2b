package status

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// These tests drive a real headless Chromium at the dashboard, so the
// script's rendering (not only the server's) is proven. Under CI=true a
// missing browser fails the test; elsewhere it skips with a message.

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

func TestDashboardInBrowser(t *testing.T) {
	// The first Records call (the page itself) sees an empty stack; the
	// script's fetch sees all six services. Every row in the DOM was
	// therefore rendered by the script.
	src := &fakeSource{first: []state.Record{}, recs: demoStack(), sum: devSummary()}
	srv := httptest.NewServer(newTestHandler(src))
	defer srv.Close()

	dom := runBrowser(t, "--virtual-time-budget=5000", "--dump-dom", srv.URL+"/")

	if !strings.Contains(dom, `data-rendered="js"`) {
		t.Fatalf("the script did not render the table (no data-rendered=\"js\"); DOM:\n%s", dom)
	}
	rows := rowsOf(dom)
	for _, svc := range []string{"platform", "document-converter", "email-classifier", "email-parser", "image-classifier", "streaming"} {
		if _, ok := rows[svc]; !ok {
			t.Errorf("rendered DOM has no row for %s", svc)
		}
	}
	img := rows["image-classifier"]
	if !strings.Contains(img, `class="row drift degraded"`) || !strings.Contains(img, ">DRIFT<") || !strings.Contains(img, ">DEGRADED<") {
		t.Errorf("image-classifier row is not marked drifted and degraded:\n%s", img)
	}
	if strings.Contains(rows["platform"], "drift") {
		t.Errorf("platform row is marked drifted:\n%s", rows["platform"])
	}
	if !strings.Contains(dom, `data-level="plain"><b>1</b> plain`) {
		t.Errorf("header counts were not rendered by the script")
	}
}

// TestDashboardScreenshot writes docs/dashboard.png for the README from the
// demo stack. Run it on purpose:
//
//	UPDATE_SCREENSHOT=1 go test ./status -run TestDashboardScreenshot
func TestDashboardScreenshot(t *testing.T) {
	if os.Getenv("UPDATE_SCREENSHOT") != "1" {
		t.Skip("set UPDATE_SCREENSHOT=1 to write docs/dashboard.png")
	}
	srv := httptest.NewServer(newTestHandler(&fakeSource{recs: demoStack(), sum: devSummary()}))
	defer srv.Close()
	out, err := filepath.Abs(filepath.Join("..", "docs", "dashboard.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	runBrowser(t, "--hide-scrollbars", "--virtual-time-budget=3000", "--window-size=1280,720", "--screenshot="+out, srv.URL+"/")
	if fi, err := os.Stat(out); err != nil || fi.Size() == 0 {
		t.Fatalf("no screenshot at %s: %v", out, err)
	}
	t.Logf("wrote %s", out)
}
