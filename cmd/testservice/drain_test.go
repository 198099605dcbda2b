package main

import (
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"testing"
	"time"
)

// A draining service closes its listeners on SIGTERM but keeps the process
// for DRAIN_ON_SIGTERM: the e2e tests rely on that window, in which a probe
// sees nothing listening while the container still runs.
func TestDrainClosesListenersAtOnceAndExitsAfterTheDrain(t *testing.T) {
	t.Parallel()
	cfg := config{Service: "svc", CertsDir: filepath.Join(t.TempDir(), "absent"), Mode: ModeAdaptive,
		HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Drain: 25 * time.Second}
	a, err := newApp(cfg, slog.New(slog.DiscardHandler), func() time.Time { return testNow })
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	asked := make(chan time.Duration, 1)
	release := make(chan time.Time)
	a.after = func(d time.Duration) <-chan time.Time {
		asked <- d
		return release
	}
	if err := a.listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	addr := a.httpLn.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- a.runThenDrain(ctx) }()
	defer close(release) // lets the process end even if an assertion fails

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dialing before SIGTERM: %v", err)
	}
	conn.Close()

	cancel() // what SIGTERM does
	select {
	case d := <-asked:
		if d != cfg.Drain {
			t.Errorf("got a drain of %s, want %s", d, cfg.Drain)
		}
	case err := <-done:
		t.Fatalf("got exit (%v) without a drain, want the process held for %s", err, cfg.Drain)
	case <-time.After(5 * time.Second):
		t.Fatalf("got no drain within 5s of SIGTERM, want one after shutdown (grace %s)", shutdownGrace)
	}
	// The drain starts only once the listeners are closed.
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Errorf("got a connection to %s while draining, want the listener closed", addr)
	}
	select {
	case err := <-done:
		t.Fatalf("got exit (%v) before the drain ended, want the process still there", err)
	default:
	}

	release <- time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v after the drain, want a clean exit", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("got no exit within 5s of the drain's end")
	}
}

func TestNoDrainExitsAtOnce(t *testing.T) {
	t.Parallel()
	cfg := config{Service: "svc", CertsDir: filepath.Join(t.TempDir(), "absent"), Mode: ModeAdaptive,
		HTTPSAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0"}
	a, err := newApp(cfg, slog.New(slog.DiscardHandler), func() time.Time { return testNow })
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	a.after = func(d time.Duration) <-chan time.Time {
		t.Errorf("got a drain of %s without DRAIN_ON_SIGTERM, want none", d)
		return time.After(0)
	}
	if err := a.listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.runThenDrain(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("got %v, want a clean exit", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("got no exit within 5s of SIGTERM")
	}
}

func TestDrainConfig(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		value string
		// want is the parsed drain; wantErr whether loadConfig refuses it.
		want    time.Duration
		wantErr bool
	}{
		"should not drain when unset":           {value: "", want: 0},
		"should parse a Go duration":            {value: "25s", want: 25 * time.Second},
		"should refuse a number without a unit": {value: "25", wantErr: true},
		"should refuse a negative drain":        {value: "-1s", wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"SERVICE_NAME": "svc", "DRAIN_ON_SIGTERM": tc.value}
			cfg, err := loadConfig(func(k string) string { return env[k] })
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if err == nil && cfg.Drain != tc.want {
				t.Errorf("got drain %s, want %s", cfg.Drain, tc.want)
			}
		})
	}
}
