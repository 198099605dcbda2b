//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
)

// TestDemo runs `make demo` as a user would, under its own compose project
// and port, and checks what the README promises: every demo service reaches
// its expected level, workers reach the platform with their client certs,
// `controller status` exits 0, and non-zero once a service drifts below its
// floor. `make demo-down` removes everything, volumes included.
func TestDemo(t *testing.T) {
	h := H(t)
	root := repoRoot(t)
	project := "crank-e2e-demo-" + h.RunID
	port := freePort(t)
	env := append(os.Environ(), "CRANK_DEMO_PROJECT="+project, "CRANK_DEMO_PORT="+port)
	down := func() {
		cmd := exec.Command("make", "-s", "demo-down")
		cmd.Dir, cmd.Env = root, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("make demo-down: %v\n%s", err, out)
		}
	}
	t.Cleanup(down)

	cmd := exec.Command("make", "-s", "demo")
	cmd.Dir, cmd.Env = root, env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make demo: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "http://127.0.0.1:"+port+"/") {
		t.Errorf("make demo did not print where the dashboard is:\n%s", out)
	}
	ctl := filepath.Join(root, "bin", "controller")
	url := "http://127.0.0.1:" + port

	want := map[string]string{
		"platform": "mtls", "document-converter": "mtls", "email-classifier": "mtls",
		"email-parser": "mtls", "streaming": "mtls",
		// plain-only: accepted (degraded, at the development floor).
		"image-classifier": "plain",
	}
	start := time.Now()
	WaitFor(t, 90*time.Second, func() (bool, string) {
		got, err := demoLevels(ctl, url)
		if err != nil {
			return false, err.Error()
		}
		for svc, lvl := range want {
			if got[svc] != lvl {
				return false, fmt.Sprintf("got levels %v, want %v", got, want)
			}
		}
		return true, ""
	})
	t.Logf("MEASURE: make demo done -> every demo service at its expected level in %s", time.Since(start).Round(100*time.Millisecond))

	code, text := runStatus(t, ctl, url)
	if code != 0 {
		t.Fatalf("got controller status exit %d, want 0 with every service at or above its floor:\n%s", code, text)
	}
	for svc := range want {
		if !strings.Contains(text, svc) {
			t.Errorf("controller status table lacks %s:\n%s", svc, text)
		}
	}

	// Workers call the platform with their client certificates.
	WaitFor(t, 30*time.Second, func() (bool, string) {
		logs := h.Logs(t, demoContainer(t, h, project, "document-converter"))
		return strings.Contains(logs, "call to peer succeeded over mTLS"), "no successful worker call to the platform yet:\n" + logs
	})

	// Drift: the platform goes down, below the development floor (plain).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	timeout := 5
	if err := h.Docker.ContainerStop(ctx, demoContainer(t, h, project, "platform"), container.StopOptions{Timeout: &timeout}); err != nil {
		t.Fatalf("stopping platform: %v", err)
	}
	WaitFor(t, 60*time.Second, func() (bool, string) {
		code, text := runStatus(t, ctl, url)
		return code == 1, fmt.Sprintf("got exit %d, want 1 with platform down:\n%s", code, text)
	})
}

func demoLevels(ctl, url string) (map[string]string, error) {
	cmd := exec.Command(ctl, "status", "--url", url, "-o", "json")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return nil, err
	}
	var rep struct {
		Containers []struct {
			Service  string `json:"service"`
			Observed string `json:"observed"`
		} `json:"containers"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("decoding status JSON: %w (%s)", err, stdout.String())
	}
	got := map[string]string{}
	for _, c := range rep.Containers {
		got[c.Service] = c.Observed
	}
	return got, nil
}

func runStatus(t *testing.T, ctl, url string) (int, string) {
	t.Helper()
	out, err := exec.Command(ctl, "status", "--url", url).CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	default:
		t.Fatalf("running controller status: %v", err)
		return -1, ""
	}
}

// demoContainer finds a demo service's container by compose labels, which
// both docker-compose v1 and the v2 plugin set (their names differ).
func demoContainer(t *testing.T, h *Harness, project, service string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(
		filters.Arg("label", LabelComposeProject+"="+project),
		filters.Arg("label", LabelComposeService+"="+service),
	)})
	if err != nil || len(list) == 0 {
		t.Fatalf("finding demo container %s/%s: %v (%d found)", project, service, err, len(list))
	}
	return list[0].ID
}

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
