package main

// Tests of `controller ca` and of the rollover flags.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/rotation"
)

var caNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

func runCAForTest(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runCA(args, &out, &errOut, func(k string) string { return env[k] }, func() time.Time { return caNow })
	return code, out.String(), errOut.String()
}

func writeStatusFile(t *testing.T, dir string, st rotation.Status) {
	t.Helper()
	raw, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, rotation.StatusFile), raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCARotateWritesARequest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	code, out, errOut := runCAForTest(t, map[string]string{"CRANK_STATE_DIR": dir}, "rotate")
	if code != caOK {
		t.Fatalf("got exit %d (%s), want 0", code, errOut)
	}
	raw, err := os.ReadFile(filepath.Join(dir, rotation.RequestFile))
	if err != nil {
		t.Fatalf("got %v reading the request, want a request file", err)
	}
	var req rotation.Request
	if err := json.Unmarshal(raw, &req); err != nil || !req.RequestedAt.Equal(caNow) {
		t.Errorf("got request %s (%v), want requested_at %s", raw, err, caNow)
	}
	if !strings.Contains(out, "requested") {
		t.Errorf("got output %q, want it to say the rollover was requested", out)
	}
}

func TestCARotateDuringARolloverWritesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeStatusFile(t, dir, rotation.Status{Phase: rotation.PhaseOverlap, Since: caNow.Add(-time.Hour)})
	code, out, _ := runCAForTest(t, nil, "rotate", "--state-dir", dir)
	if code != caOK || !strings.Contains(out, "already in progress") {
		t.Errorf("got exit %d output %q, want 0 and 'already in progress'", code, out)
	}
	if _, err := os.Stat(filepath.Join(dir, rotation.RequestFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want no request file", err)
	}
}

func TestCAStatus(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	st := rotation.Status{
		Phase: rotation.PhaseOverlap, Trigger: rotation.TriggerManual, Since: caNow.Add(-time.Hour), StartedAt: caNow.Add(-time.Hour),
		Done: 4, Total: 6, WaitingFor: []string{"email-parser", "streaming"},
		Why:       map[string]string{"streaming": "streaming-1: refused the new CA's client certificate"},
		ActiveCA:  rotation.CAStatus{Fingerprint: "abcdef0123456789abcdef", Subject: "CN=old", NotAfter: caNow.Add(900 * time.Hour)},
		Successor: &rotation.CAStatus{Fingerprint: "0123", Subject: "CN=new", NotAfter: caNow.Add(87600 * time.Hour)},
		CheckedAt: caNow.Add(-2 * time.Second),
	}
	writeStatusFile(t, dir, st)
	tests := map[string]struct {
		args     []string
		wantCode int
		wantOut  []string // substrings of stdout
		wantErr  string   // substring of stderr
	}{
		"should print phase, progress and who is waited for as a table": {
			args: []string{"status", "--state-dir", dir}, wantCode: caOK,
			wantOut: []string{"overlap (manual)", "4/6 services", "email-parser", "streaming-1: refused", "CN=new", "abcdef0123456789"},
		},
		"should print the status file as JSON": {
			args: []string{"status", "--state-dir", dir, "-o", "json"}, wantCode: caOK,
			wantOut: []string{`"phase": "overlap"`, `"waiting_for": [`},
		},
		"should fail with 2 when the controller never wrote a status": {
			args: []string{"status", "--state-dir", t.TempDir()}, wantCode: caUsage, wantErr: "no rollover status",
		},
		"should refuse an unknown output": {
			args: []string{"status", "--state-dir", dir, "-o", "yaml"}, wantCode: caUsage, wantErr: "want table or json",
		},
		"should refuse an unknown subcommand": {
			args: []string{"shred"}, wantCode: caUsage, wantErr: "unknown command",
		},
		"should print usage and fail without a subcommand": {
			args: nil, wantCode: caUsage, wantErr: "usage: controller ca rotate",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, out, errOut := runCAForTest(t, nil, tc.args...)
			if code != tc.wantCode {
				t.Errorf("got exit %d, want %d (stderr %q)", code, tc.wantCode, errOut)
			}
			for _, want := range tc.wantOut {
				if !strings.Contains(out, want) {
					t.Errorf("got stdout %q, want it to contain %q", out, want)
				}
			}
			if !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("got stderr %q, want it to contain %q", errOut, tc.wantErr)
			}
		})
	}
}

func TestCARotationFlags(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args    []string
		env     map[string]string
		wantErr string // substring of the error; "" means success
		check   func(t *testing.T, c Config)
	}{
		"should default the rollover settings as documented": {
			check: func(t *testing.T, c Config) {
				if c.CARotateFraction != 0.8 || c.CARotateTimeout != 24*time.Hour || c.CARotateInterval != 5*time.Second ||
					!slices.Equal(c.ExpiryWarn, rotation.DefaultExpiryWarn) {
					t.Errorf("got %v %v %v %v, want 0.8 24h 5s [720h 168h 24h]", c.CARotateFraction, c.CARotateTimeout, c.CARotateInterval, c.ExpiryWarn)
				}
			},
		},
		"should read the rollover settings from the environment": {
			env: map[string]string{"CRANK_CA_ROTATE_FRACTION": "0.5", "CRANK_CA_ROTATE_TIMEOUT": "2h", "CRANK_CA_ROTATE_INTERVAL": "1s", "CRANK_EXPIRY_WARN": "48h"},
			check: func(t *testing.T, c Config) {
				if c.CARotateFraction != 0.5 || c.CARotateTimeout != 2*time.Hour || c.CARotateInterval != time.Second || !slices.Equal(c.ExpiryWarn, []time.Duration{48 * time.Hour}) {
					t.Errorf("got %v %v %v %v, want 0.5 2h 1s [48h]", c.CARotateFraction, c.CARotateTimeout, c.CARotateInterval, c.ExpiryWarn)
				}
			},
		},
		"should refuse a fraction of 1":          {args: []string{"--ca-rotate-fraction", "1"}, wantErr: "--ca-rotate-fraction (env CRANK_CA_ROTATE_FRACTION)"},
		"should refuse a timeout under a minute": {args: []string{"--ca-rotate-timeout", "1s"}, wantErr: "--ca-rotate-timeout"},
		"should refuse an empty warning list":    {env: map[string]string{"CRANK_EXPIRY_WARN": " , "}, wantErr: "--expiry-warn (env CRANK_EXPIRY_WARN)"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c, err := parseConfig(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				tc.check(t, c)
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
