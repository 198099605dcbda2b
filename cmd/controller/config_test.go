package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/reconcile"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args []string
		env  map[string]string
		// wantErr is a substring of the error; "" means success.
		wantErr string
		// check inspects a successful config.
		check func(t *testing.T, c Config)
	}{
		"should use documented defaults with no flags or env": {
			check: func(t *testing.T, c Config) {
				if c.CertsRoot != "/certs" || c.StateDir != "/state" || c.Environment != reconcile.Development || c.Workers != 4 || c.Resync != 5*time.Minute {
					t.Errorf("got %+v, want defaults", c)
				}
			},
		},
		"should take the environment variable over the default": {
			env: map[string]string{"CRANK_ENVIRONMENT": "production", "CRANK_WORKERS": "8"},
			check: func(t *testing.T, c Config) {
				if c.Environment != reconcile.Production || c.Workers != 8 {
					t.Errorf("got env %q workers %d, want production 8", c.Environment, c.Workers)
				}
			},
		},
		"should take the flag over the environment variable": {
			args: []string{"--environment", "development"},
			env:  map[string]string{"CRANK_ENVIRONMENT": "production"},
			check: func(t *testing.T, c Config) {
				if c.Environment != reconcile.Development {
					t.Errorf("got %q, want development", c.Environment)
				}
			},
		},
		"should reject an unknown environment naming flag and variable": {
			env: map[string]string{"CRANK_ENVIRONMENT": "staging"}, wantErr: "invalid --environment (env CRANK_ENVIRONMENT)",
		},
		"should accept a loopback profile address": {
			env: map[string]string{"CRANK_PPROF_LISTEN": "127.0.0.1:6060"},
			check: func(t *testing.T, c Config) {
				if c.PprofListen != "127.0.0.1:6060" {
					t.Errorf("got %q, want 127.0.0.1:6060", c.PprofListen)
				}
			},
		},
		"should accept localhost and ::1 for profiles": {args: []string{"--pprof-listen", "[::1]:0"}},
		"should refuse profiles on every interface": {
			args: []string{"--pprof-listen", ":6060"}, wantErr: "invalid --pprof-listen (env CRANK_PPROF_LISTEN): \"\" is not a loopback address",
		},
		"should refuse profiles on a routable address": {
			args: []string{"--pprof-listen", "10.0.0.1:6060"}, wantErr: "is not a loopback address",
		},
		"should refuse a profile address without a port": {
			args: []string{"--pprof-listen", "127.0.0.1"}, wantErr: "missing port",
		},
		"should reject a certs root equal to the state dir": {
			args: []string{"--certs-root", "/x", "--state-dir", "/x"}, wantErr: "CA key must never be in the shared volume",
		},
		"should reject a state dir inside the certs root": {
			args: []string{"--certs-root", "/certs", "--state-dir", "/certs/controller/"}, wantErr: "overlap",
		},
		"should reject a certs root inside the state dir": {
			args: []string{"--certs-root", "/state/../state/certs", "--state-dir", "/state"}, wantErr: "overlap",
		},
		"should reject an operator dir inside the certs root": {
			args: []string{"--operator-dir", "/certs/operator"}, wantErr: "operator's key",
		},
		"should accept sibling directories with a common prefix": {
			args: []string{"--certs-root", "/srv/certs", "--state-dir", "/srv/certs-state"},
		},
		"should reject zero workers":            {args: []string{"--workers", "0"}, wantErr: "outside 1-64"},
		"should reject a malformed duration":    {args: []string{"--resync", "often"}, wantErr: "invalid --resync"},
		"should reject a renew fraction of one": {args: []string{"--renew-fraction", "1"}, wantErr: "strictly between"},
		"should reject an unknown key algorithm": {
			args: []string{"--key-algorithm", "dsa"}, wantErr: "invalid --key-algorithm",
		},
		"should reject leaves that outlive the CA": {
			args: []string{"--leaf-lifetime", "100h", "--ca-lifetime", "10h"}, wantErr: "shorter than --ca-lifetime",
		},
		"should reject an unknown log format": {args: []string{"--log-format", "xml"}, wantErr: "invalid --log-format"},
		"should read the rollback switch and quarantine labels": {
			env: map[string]string{"CRANK_MODE": "observe", "CRANK_QUARANTINE_LABELS": "traefik.enable=false, crank.quarantined=true"},
			check: func(t *testing.T, c Config) {
				if c.Mode != "observe" || c.Quarantine["traefik.enable"] != "false" || c.Quarantine["crank.quarantined"] != "true" {
					t.Errorf("got mode %q quarantine %v, want observe with two labels", c.Mode, c.Quarantine)
				}
			},
		},
		"should reject a quarantine label on compose's namespace": {
			args: []string{"--quarantine-labels", "com.docker.compose.service=x"}, wantErr: "not com.docker.compose",
		},
		"should reject down as the production minimum": {
			args: []string{"--production-min-level", "down"}, wantErr: "invalid --production-min-level",
		},
		"should reject an unknown mode":  {args: []string{"--mode", "fix"}, wantErr: "invalid --mode"},
		"should reject a stray argument": {args: []string{"extra"}, wantErr: `unexpected argument "extra"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			getenv := func(k string) string { return tc.env[k] }
			c, err := parseConfig(tc.args, getenv, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if tc.check != nil {
				tc.check(t, c)
			}
		})
	}
}

// The README's flag table is what operators read; it must list every flag
// and variable the binary accepts.
func TestREADMEDocumentsEveryFlag(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("reading README: %v", err)
	}
	for _, d := range flagDefs {
		for _, want := range []string{"`--" + d.name + "`", "`" + d.env + "`"} {
			if !strings.Contains(string(readme), want) {
				t.Errorf("README does not document %s", want)
			}
		}
	}
}
