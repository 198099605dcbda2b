package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

func runIdentityForTest(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = runIdentity(args, &out, &errOut, func(k string) string {
		if k == "CRANK_STATE_DIR" {
			return dir
		}
		return ""
	})
	return code, out.String(), errOut.String()
}

func openTestStore(t *testing.T, dir string) *state.Store {
	t.Helper()
	s, err := state.Open(dir, state.Options{Timeout: time.Second, Logger: slog.New(slog.DiscardHandler), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestIdentityReleaseRoundTrip(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store := openTestStore(t, dir)
	owner := state.IdentityOwner{Key: "compose:old/platform", Project: "old", Service: "platform", Container: "old-platform-1"}
	if _, err := store.ClaimIdentity("platform", owner); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(state.Record{ContainerID: "c1", Service: "platform"}); err != nil {
		t.Fatal(err)
	}
	var enqueued []string
	q := &identityRequests{stateDir: dir, store: store, enqueue: func(id string) { enqueued = append(enqueued, id) },
		every: time.Second, log: slog.New(slog.DiscardHandler)}
	if err := q.step(); err != nil {
		t.Fatalf("step: %v", err)
	}
	code, out, errOut := runIdentityForTest(t, dir, "list")
	if code != 0 || !strings.Contains(out, "compose:old/platform") {
		t.Fatalf("list: got %d %q %q, want 0 and the owner", code, out, errOut)
	}
	if code, _, errOut := runIdentityForTest(t, dir, "release", "platform"); code != 0 {
		t.Fatalf("release: got %d %q, want 0", code, errOut)
	}
	if err := q.step(); err != nil {
		t.Fatalf("step: %v", err)
	}
	if _, found, _ := store.IdentityOwnerOf("platform"); found {
		t.Error("after release: got an owner, want none")
	}
	if len(enqueued) != 1 || enqueued[0] != "c1" {
		t.Errorf("enqueued after release: got %v, want [c1]", enqueued)
	}
	if _, err := os.Stat(filepath.Join(dir, identityReleasePrefix+"platform")); !os.IsNotExist(err) {
		t.Errorf("request file after the step: got %v, want it removed", err)
	}
	if _, out, _ := runIdentityForTest(t, dir, "list", "-o", "json"); strings.Contains(out, "platform") {
		t.Errorf("list after release: got %q, want no platform", out)
	}
}

func TestIdentityCommandRejectsBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := map[string][]string{
		"should reject a name that is not a DNS label":   {"release", "../ca"},
		"should reject release without a name":           {"release"},
		"should reject two names":                        {"release", "a", "b"},
		"should reject an unknown subcommand":            {"steal", "platform"},
		"should reject an unknown output format":         {"list", "-o", "yaml"},
		"should say when the controller has not run yet": {"list"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			code, _, errOut := runIdentityForTest(t, dir, args...)
			if code != caUsage || errOut == "" {
				t.Errorf("%v: got exit %d and stderr %q, want %d and a message", args, code, errOut, caUsage)
			}
		})
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("state dir after bad input: got %d entries, want none written", len(entries))
	}
}
