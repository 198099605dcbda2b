//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A Prometheus process for prometheus_test.go, and the parts of its HTTP
// API the test reads. Everything is prefixed prom so it cannot collide with
// the other e2e files of the package.

// promServer is a Prometheus process on a loopback port.
type promServer struct {
	base   string // http://127.0.0.1:<port>
	client *http.Client
}

// promListening is the line Prometheus logs with the port it was given.
var promListening = regexp.MustCompile(`msg="Listening on" address=(127\.0\.0\.1:\d+)`)

// promStart runs Prometheus with rules, scraping target every
// promInterval, and waits until it is ready. The process is killed and its
// directory removed when the test ends.
func promStart(t *testing.T, target, rules string) *promServer {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		msg := "no prometheus binary (Debian's prometheus package; .ci/run installs it)"
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	dir := t.TempDir()
	rulesPath := filepath.Join(dir, "alerts.yaml")
	config := fmt.Sprintf(`global:
  scrape_interval: %[1]s
  scrape_timeout: %[1]s
  evaluation_interval: %[1]s
rule_files: [%[2]q]
scrape_configs:
  - job_name: %[3]s
    static_configs:
      - targets: [%[4]q]
`, promInterval, rulesPath, promJob, target)
	for name, text := range map[string]string{"alerts.yaml": rules, "prometheus.yml": config} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address=127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Gone with the test binary, even if it is killed before cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Registered after t.TempDir, so it runs first: the directory goes
	// only once the process is gone.
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", data)
		}
	})

	p := &promServer{client: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: promDialLoopback}}}
	WaitFor(t, 30*time.Second, func() (bool, string) {
		select {
		case err := <-exited:
			exited <- err
			data, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus exited: %v\n%s", err, data)
		default:
		}
		if p.base == "" {
			data, _ := os.ReadFile(logPath)
			m := promListening.FindSubmatch(data)
			if m == nil {
				return false, "prometheus has not logged its address yet"
			}
			p.base = "http://" + string(m[1])
		}
		status, err := p.status("/-/ready")
		return status == http.StatusOK, fmt.Sprintf("/-/ready: %d %v", status, err)
	})
	return p
}

// promDialLoopback refuses every address but 127.0.0.1: the test talks only to
// its own Prometheus.
func promDialLoopback(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("refusing to dial %s: only the test's Prometheus on loopback", addr)
	}
	return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
}

func (p *promServer) status(path string) (int, error) {
	resp, err := p.client.Get(p.base + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

// api GETs an /api/v1 path and decodes its data into out; an error status
// or a warning is an error.
func (p *promServer) api(path string, q url.Values, out any) error {
	resp, err := p.client.Get(p.base + "/api/v1/" + path + "?" + q.Encode())
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var env struct {
		Status, ErrorType, Error string
		Warnings                 []string
		Data                     json.RawMessage
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 8<<20)).Decode(&env); err != nil {
		return fmt.Errorf("decoding /api/v1/%s (HTTP %d): %w", path, resp.StatusCode, err)
	}
	if env.Status != "success" {
		return fmt.Errorf("/api/v1/%s: %s: %s", path, env.ErrorType, env.Error)
	}
	if len(env.Warnings) > 0 {
		return fmt.Errorf("/api/v1/%s: warnings %v", path, env.Warnings)
	}
	return json.Unmarshal(env.Data, out)
}

// promSample is one series of a query result (vector or matrix).
type promSample struct {
	Metric map[string]string `json:"metric"`
}

// query runs an instant query and returns its series; an error fails the
// test.
func (p *promServer) query(t *testing.T, expr string) []promSample {
	t.Helper()
	got, err := p.tryQuery(expr)
	if err != nil {
		t.Fatalf("query %s: %v", expr, err)
	}
	return got
}

func (p *promServer) tryQuery(expr string) ([]promSample, error) {
	var data struct {
		Result []promSample `json:"result"`
	}
	err := p.api("query", url.Values{"query": {expr}}, &data)
	return data.Result, err
}

type promRule struct {
	Name           string      `json:"name"`
	Query          string      `json:"query"`
	Duration       float64     `json:"duration"` // for:, in seconds
	Health         string      `json:"health"`
	LastError      string      `json:"lastError"`
	LastEvaluation time.Time   `json:"lastEvaluation"`
	Alerts         []promAlert `json:"alerts"`
}

type promAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"`
	ActiveAt    time.Time         `json:"activeAt"`
}

// rules returns every alerting rule Prometheus has loaded.
func (p *promServer) rules() ([]promRule, error) {
	var data struct {
		Groups []struct {
			Rules []promRule `json:"rules"`
		} `json:"groups"`
	}
	if err := p.api("rules", url.Values{"type": {"alert"}}, &data); err != nil {
		return nil, err
	}
	var out []promRule
	for _, g := range data.Groups {
		out = append(out, g.Rules...)
	}
	return out, nil
}

// waitAlert waits until rule name has an alert in state whose labels
// include match, and returns it.
func (p *promServer) waitAlert(t *testing.T, name string, match map[string]string, state string) promAlert {
	t.Helper()
	var found promAlert
	WaitFor(t, lvDeadline, func() (bool, string) {
		rules, err := p.rules()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range rules {
			if r.Name != name {
				continue
			}
			for _, a := range r.Alerts {
				if a.State == state && promLabelsInclude(a.Labels, match) {
					found = a
					return true, ""
				}
			}
			return false, fmt.Sprintf("rule %s: health %s, alerts %v", name, r.Health, r.Alerts)
		}
		return false, "no rule " + name
	})
	return found
}

func promLabelsInclude(labels, match map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// promMetricName finds the metrics an expression reads.
var promMetricName = regexp.MustCompile(`\b(crank_security_[a-z_]+|up)\b`)

// checkEveryRule checks that Prometheus loaded exactly the alerts named in
// the file, with for: cut to promFor, and that once every metric a rule
// reads has series, every rule evaluates without error, in Prometheus'
// own evaluation and as an instant query.
func (p *promServer) checkEveryRule(t *testing.T, names []string) {
	t.Helper()
	rules, err := p.rules()
	if err != nil {
		t.Fatal(err)
	}
	var loaded []string
	metrics := map[string]bool{}
	wantFor, _ := time.ParseDuration(promFor)
	for _, r := range rules {
		loaded = append(loaded, r.Name)
		if r.Duration != 0 && r.Duration != wantFor.Seconds() {
			t.Errorf("rule %s: got for %vs, want the test's %s", r.Name, r.Duration, promFor)
		}
		for _, m := range promMetricName.FindAllString(r.Query, -1) {
			metrics[m] = true
		}
	}
	if !slices.Equal(loaded, names) {
		t.Fatalf("got rules %v loaded, want those of alerts.yaml %v", loaded, names)
	}
	// A rule may match nothing here (CrankSecurityBelowFloor under a
	// production controller); every metric it reads must have series.
	WaitFor(t, lvDeadline, func() (bool, string) {
		var missing []string
		for m := range metrics {
			got, err := p.tryQuery("count(" + m + ")")
			if err != nil {
				return false, err.Error()
			}
			if len(got) == 0 {
				missing = append(missing, m)
			}
		}
		slices.Sort(missing)
		return len(missing) == 0, fmt.Sprintf("metrics with no series yet: %v", missing)
	})
	seriesAt := time.Now()
	WaitFor(t, 10*time.Second, func() (bool, string) {
		rules, err := p.rules()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range rules {
			if !r.LastEvaluation.After(seriesAt) {
				return false, fmt.Sprintf("rule %s last evaluated at %s, before every series existed", r.Name, r.LastEvaluation)
			}
		}
		for _, r := range rules {
			if r.Health != "ok" || r.LastError != "" {
				t.Errorf("rule %s (%s): got health %q, error %q, want ok", r.Name, r.Query, r.Health, r.LastError)
			}
		}
		return true, ""
	})
	for _, r := range rules {
		if _, err := p.tryQuery(r.Query); err != nil {
			t.Errorf("rule %s: instant query %s: %v", r.Name, r.Query, err)
		}
	}
	if !t.Failed() {
		t.Logf("%d rules evaluate without error against real series of %s", len(rules),
			strings.Join(slices.Sorted(maps.Keys(metrics)), ", "))
	}
}
