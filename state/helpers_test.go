package state

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixedNow is the injected clock for every test store.
var fixedNow = time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)

// logBuffer collects JSON log lines from a store; safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines decodes every log line written so far.
func (b *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("decoding log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// withLevel returns the log lines at level (e.g. "ERROR").
func (b *logBuffer) withLevel(t *testing.T, level string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, m := range b.lines(t) {
		if m[slog.LevelKey] == level {
			out = append(out, m)
		}
	}
	return out
}

type openOption func(*Options)

func withTimeout(d time.Duration) openOption { return func(o *Options) { o.Timeout = d } }

// testOptions builds Options with the fixed clock and a captured logger.
func testOptions(opts ...openOption) (Options, *logBuffer) {
	logs := &logBuffer{}
	o := Options{
		Timeout: 200 * time.Millisecond,
		Logger:  slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:     func() time.Time { return fixedNow },
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o, logs
}

// mustOpen opens a store in dir and closes it when the test ends.
func mustOpen(t *testing.T, dir string, opts ...openOption) (*Store, *logBuffer) {
	t.Helper()
	o, logs := testOptions(opts...)
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): got error %v, want nil", dir, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, logs
}

type recordOption func(*Record)

func withHistory(n int) recordOption {
	return func(r *Record) {
		for i := range n {
			r.History = append(r.History, Event{At: fixedNow.Add(time.Duration(i) * time.Second), Action: "reissue", Result: "ok"})
		}
	}
}

// newRecord builds a fully populated record so round trips cover every field.
func newRecord(id string, opts ...recordOption) Record {
	r := Record{
		ContainerID:   id,
		ContainerName: "app-" + id,
		Service:       "app",
		Project:       "shop",
		DNSNames:      []string{"app", "app.shop", "localhost"},
		Bundle: BundleRecord{
			Generation:   "..2026_11_29_12_00_00.123456789",
			WrittenAt:    fixedNow.Add(-time.Hour),
			ServerSerial: "0a1b",
			ClientSerial: "0c2d",
			NotAfter:     fixedNow.Add(90 * 24 * time.Hour),
			IssuedReason: "renew-due",
			IssuedAt:     fixedNow.Add(-time.Hour),
		},
		ObservedLevel:      "mtls",
		LevelSince:         fixedNow.Add(-30 * time.Minute),
		NeedsRestart:       true,
		NeedsRestartReason: "ca rotated",
		Findings:           []string{"renew-due"},
		Remediation: RemediationState{
			Attempts: 2, NextActionAt: fixedNow.Add(time.Minute), Degraded: "",
			LastAction: "restart", LastActionAt: fixedNow.Add(-time.Minute),
		},
		Transitions: []Transition{{At: fixedNow, From: "tls", To: "mtls", Cause: "bundle written"}},
	}
	for _, opt := range opts {
		opt(&r)
	}
	return r
}
