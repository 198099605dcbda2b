package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
	"github.com/crank-platform/crank-mtls-controller/status"
)

var statusNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// statusRecord is a container at mtls with the given floor; opts change it.
func statusRecord(service, container string, opts ...func(*state.Record)) state.Record {
	r := state.Record{
		ContainerID: "id-" + container, ContainerName: container, Service: service, ObservedLevel: "mtls",
		Bundle: state.BundleRecord{NotAfter: statusNow.Add(60 * 24 * time.Hour)},
		Level:  state.LevelRecord{Desired: "mtls", Floor: "plain", Budget: 3, OnDrift: "restart"},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func belowFloor(r *state.Record) {
	r.ObservedLevel = "tls"
	r.Level.Floor, r.Level.Drift, r.Level.BelowFloor = "mtls", true, true
	r.Level.ProbeFindings = []string{"client-auth-not-enforced"}
	r.Remediation = state.RemediationState{Attempts: 3, Degraded: "restart budget (3) spent", LastAction: "restart"}
}

func statusServer(t *testing.T, recs ...state.Record) http.Handler {
	t.Helper()
	return statusServerIn(reconcile.Production, recs...)
}

// statusServerIn serves recs as a controller in env with the default
// production minimum (mtls).
func statusServerIn(env reconcile.Environment, recs ...state.Record) http.Handler {
	return status.NewHandler(status.Funcs{
		RecordsFunc: func() ([]state.Record, error) { return recs, nil },
		SummaryFunc: func() status.Summary {
			return status.Summary{Mode: reconcile.Enforce, Environment: env, CANotAfter: statusNow.Add(3650 * 24 * time.Hour),
				ProductionMinimum: probe.MTLS}
		},
	}, status.WithClock(func() time.Time { return statusNow }))
}

// plainOnly is a development service that asks for plain and serves it.
func plainOnly(r *state.Record) {
	r.ObservedLevel, r.Level.Desired = "plain", "plain"
}

// runStatusCmd runs `controller status args` with env and returns the exit
// code, stdout and stderr.
func runStatusCmd(args []string, env map[string]string) (int, string, string) {
	var stdout, stderr bytes.Buffer
	code := runStatus(args, &stdout, &stderr, func(k string) string { return env[k] })
	return code, stdout.String(), stderr.String()
}

func TestStatusCommand(t *testing.T) {
	t.Parallel()
	healthy := []state.Record{statusRecord("platform", "crank-platform-1"), statusRecord("email-parser", "crank-email-parser-1"),
		statusRecord("email-parser", "crank-email-parser-2")}
	broken := append([]state.Record{statusRecord("image-classifier", "crank-image-classifier-1", belowFloor)}, healthy...)

	tests := map[string]struct {
		recs []state.Record
		// args are the command's arguments; "URL" is replaced by the test
		// server's URL. env is its environment ("URL" replaced too).
		args []string
		env  map[string]string
		// wantCode is the exit status; wantOut and wantErr are substrings
		// of stdout and stderr; notOut must not be in stdout.
		wantCode         int
		wantOut, wantErr []string
		notOut           []string
	}{
		"should print a table and exit 0 when every container is at or above its floor": {
			recs: healthy, args: []string{"--url", "URL"}, wantCode: 0,
			wantOut: []string{"mode enforce, environment production, CA expires 2036-02-27 (3650 days)",
				"SERVICE", "EXPIRES(days)", "LAST-ACTION", "crank-platform-1", "crank-email-parser-2", "60"},
		},
		"should exit 1 and name the container below its floor": {
			recs: broken, args: []string{"--url", "URL"}, wantCode: 1,
			wantOut: []string{"tls BELOW-FLOOR", "client-auth-not-enforced", "restart (degraded)", "1 below floor"},
			wantErr: []string{"below floor: image-classifier/crank-image-classifier-1 observed tls, floor mtls"},
		},
		"should print the JSON with -o json and still exit by the floor": {
			recs: broken, args: []string{"--url", "URL", "-o", "json"}, wantCode: 1,
			wantOut: []string{`"api_version": "v1"`, `"below_floor": true`}, notOut: []string{"SERVICE"},
		},
		"should show every container of one service with --service": {
			recs: broken, args: []string{"--url", "URL", "--service", "email-parser"}, wantCode: 0,
			wantOut: []string{"crank-email-parser-1", "crank-email-parser-2"}, notOut: []string{"image-classifier", "mode enforce"},
		},
		"should exit 2 for a service with no container": {
			recs: healthy, args: []string{"--url", "URL", "--service", "nope"}, wantCode: 2,
			wantErr: []string{`404 Not Found: no managed container of service "nope"`},
		},
		"should take the URL from CRANK_STATUS_URL": {
			recs: healthy, env: map[string]string{"CRANK_STATUS_URL": "URL"}, wantCode: 0, wantOut: []string{"crank-platform-1"},
		},
		"should exit 2 on an unknown output format": {
			recs: healthy, args: []string{"--url", "URL", "-o", "yaml"}, wantCode: 2, wantErr: []string{`invalid -o "yaml"`},
		},
		"should exit 2 on a stray argument": {
			recs: healthy, args: []string{"--url", "URL", "platform"}, wantCode: 2, wantErr: []string{`unexpected argument "platform"`},
		},
		"should exit 2 when --tls-dir is given with an http URL": {
			recs: healthy, args: []string{"--url", "URL", "--tls-dir", "/nonexistent"}, wantCode: 2, wantErr: []string{"needs an https URL"},
		},
		"should exit 2 on a URL that is not http(s)": {
			recs: healthy, args: []string{"--url", "ftp://x"}, wantCode: 2, wantErr: []string{"invalid --url"},
		},
		"should exit 2 with a clear message when nothing listens": {
			recs: healthy, args: []string{"--url", "http://127.0.0.1:1"}, wantCode: 2,
			wantErr: []string{"cannot reach the controller at http://127.0.0.1:1"},
		},
		"should exit 0 on -h": {
			recs: healthy, args: []string{"-h"}, wantCode: 0, wantErr: []string{"usage: controller status", "Exit status"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(statusServer(t, tc.recs...))
			defer srv.Close()
			args := replaceAll(tc.args, srv.URL)
			env := map[string]string{}
			for k, v := range tc.env {
				env[k] = strings.ReplaceAll(v, "URL", srv.URL)
			}
			code, stdout, stderr := runStatusCmd(args, env)
			if code != tc.wantCode {
				t.Errorf("exit: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.notOut {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout has %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestStatusCommandAsProduction(t *testing.T) {
	t.Parallel()
	healthy := []state.Record{statusRecord("platform", "crank-platform-1"), statusRecord("email-parser", "crank-email-parser-1"),
		statusRecord("email-parser", "crank-email-parser-2")}
	withLegacy := append([]state.Record{statusRecord("legacy-reporter", "crank-legacy-reporter-1", plainOnly)}, healthy...)
	lifted := append([]state.Record{statusRecord("legacy-reporter", "crank-legacy-reporter-1",
		func(r *state.Record) { r.Level.Desired = "plain" })}, healthy...)

	tests := map[string]struct {
		recs []state.Record
		// args are the command's arguments, "URL" replaced by the server's.
		args []string
		// wantCode is the exit status; wantOut and wantErr are substrings
		// of stdout and stderr; notOut and notErr must not be in them.
		wantCode         int
		wantOut, wantErr []string
		notOut, notErr   []string
	}{
		"should name a plain-only development service production would refuse, and exit 1": {
			recs: withLegacy, args: []string{"--url", "URL", "--as", "production"}, wantCode: 1,
			wantOut: []string{"ready for production: 3/4 (minimum mtls; environment now development)", "PRODUCTION-FLOOR",
				"crank-legacy-reporter-1", "NOT READY", "label-below-minimum: serves plain as its label asks; production lifts it to mtls"},
			notOut:  []string{"crank-platform-1"},
			wantErr: []string{"would be below the production floor: legacy-reporter/crank-legacy-reporter-1 observed plain, floor mtls: label-below-minimum"},
		},
		"should pass once the service serves mtls, noting the label production lifts": {
			recs: lifted, args: []string{"--url", "URL", "--as", "production"}, wantCode: 0,
			wantOut: []string{"ready for production: 4/4", "label-lifted"}, notErr: []string{"would be below"},
		},
		"should pass a stack that asks for nothing below the minimum, with no table": {
			recs: healthy, args: []string{"--url", "URL", "--as", "production"}, wantCode: 0,
			wantOut: []string{"ready for production: 3/3"}, notOut: []string{"PRODUCTION-FLOOR"},
		},
		"should judge one service with --service": {
			recs: withLegacy, args: []string{"--url", "URL", "--as", "production", "--service", "email-parser"}, wantCode: 0,
			wantOut: []string{"ready for production: 2/2 (minimum mtls)"}, notOut: []string{"legacy"},
		},
		"should print the JSON with -o json and exit by the verdict": {
			recs: withLegacy, args: []string{"--url", "URL", "--as", "production", "-o", "json"}, wantCode: 1,
			wantOut: []string{`"verdict": "ready for production: 3/4"`, `"code": "label-below-minimum"`},
		},
		"should exit 0 without --as in development, and show the verdict in the header": {
			recs: withLegacy, args: []string{"--url", "URL"}, wantCode: 0,
			wantOut: []string{"ready for production: 3/4 (see --as production)"},
		},
		"should exit 2 on another environment": {
			recs: healthy, args: []string{"--url", "URL", "--as", "staging"}, wantCode: 2, wantErr: []string{`invalid --as "staging": want production`},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(statusServerIn(reconcile.Development, tc.recs...))
			defer srv.Close()
			code, stdout, stderr := runStatusCmd(replaceAll(tc.args, srv.URL), nil)
			if code != tc.wantCode {
				t.Errorf("exit: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, s := range tc.wantOut {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.notOut {
				if strings.Contains(stdout, s) {
					t.Errorf("stdout has %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.wantErr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			for _, s := range tc.notErr {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr has %q:\n%s", s, stderr)
				}
			}
		})
	}
}

func TestStatusCommandAsProductionNeedsAControllerThatJudges(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"api_version": "v1", "summary": map[string]any{"mode": "enforce"}, "containers": []any{}})
	}))
	defer srv.Close()
	code, _, stderr := runStatusCmd([]string{"--url", srv.URL, "--as", "production"}, nil)
	if code != 2 || !strings.Contains(stderr, "does not judge production readiness") {
		t.Errorf("got exit %d, stderr %q; want 2 saying the controller does not judge it", code, stderr)
	}
}

func TestStatusCommandRejectsOtherAPIVersions(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"api_version": "v2", "containers": []any{}})
	}))
	defer srv.Close()
	code, _, stderr := runStatusCmd([]string{"--url", srv.URL}, nil)
	if code != 2 || !strings.Contains(stderr, `api_version "v2"`) {
		t.Errorf("got exit %d, stderr %q; want 2 naming the version", code, stderr)
	}
}

func TestStatusCommandMTLS(t *testing.T) {
	t.Parallel()
	ours := mtlsAuthority(t)
	operatorDir := t.TempDir() + "/operator"
	if err := status.WriteOperatorBundle(operatorDir, ours, certs.IssueOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	handler := statusServer(t, statusRecord("platform", "crank-platform-1"))

	tests := map[string]struct {
		server *certs.Authority // issues the listener's certificate
		tlsDir string
		// wantCode is the exit status; wantErr a substring of stderr.
		wantCode int
		wantErr  string
	}{
		"should connect with the operator bundle to a listener of our CA": {server: ours, tlsDir: operatorDir, wantCode: 0},
		"should refuse a listener whose certificate is from another CA": {
			server: mtlsAuthority(t), tlsDir: operatorDir, wantCode: 2, wantErr: "its certificate is not from the CA in --tls-dir",
		},
		"should explain that an mTLS listener needs --tls-dir": {
			server: ours, wantCode: 2, wantErr: "pass --tls-dir",
		},
		"should exit 2 when --tls-dir holds no bundle": {
			server: ours, tlsDir: t.TempDir(), wantCode: 2, wantErr: "loading the client certificate from --tls-dir",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := status.ListenerTLS(tc.server, []string{"localhost", "127.0.0.1"}, certs.IssueOptions{}, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewUnstartedServer(handler)
			srv.TLS = cfg
			srv.StartTLS()
			defer srv.Close()
			code, stdout, stderr := runStatusCmd([]string{"--url", srv.URL}, map[string]string{"CRANK_STATUS_TLS_DIR": tc.tlsDir})
			if code != tc.wantCode {
				t.Errorf("exit: got %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.wantErr) {
				t.Errorf("stderr: got %q, want it to contain %q", stderr, tc.wantErr)
			}
			if tc.wantCode == 0 && !strings.Contains(stdout, "crank-platform-1") {
				t.Errorf("stdout lacks the container:\n%s", stdout)
			}
		})
	}
}

func mtlsAuthority(t *testing.T) *certs.Authority {
	t.Helper()
	a, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func replaceAll(args []string, url string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "URL", url)
	}
	return out
}
