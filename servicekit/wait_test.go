package servicekit

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

const testPoll = 5 * time.Millisecond

func TestWaitInProductionFailsNamingWhatIsMissing(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	b := f.issue(f.ca, "api")
	files := filesOf(b)
	delete(files, FileClientKey)
	must(t, f.vol.EnsureServiceDir("api", certs.Owner{UID: -1, GID: -1}))
	f.publishRaw("api", files)
	rec := &logRecorder{}
	cfg := Config{Service: "api", Dir: f.dir("api"), Environment: Production, Poll: testPoll, Logger: slog.New(rec)}
	level, err := Wait(context.Background(), cfg, 50*time.Millisecond)
	if !errors.Is(err, ErrIncompleteBundle) {
		t.Fatalf("got %s, %v; want an error wrapping ErrIncompleteBundle", level, err)
	}
	if !strings.HasSuffix(err.Error(), ": missing client.key") || !strings.Contains(err.Error(), f.dir("api")) {
		t.Errorf("got %q, want it to name the dir and client.key as missing", err)
	}
	if w := rec.warnings("", ""); len(w) != 0 {
		t.Errorf("got warnings %v in production, want the error only", w)
	}
}

func TestWaitInDevelopmentDegradesWithOneWarning(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	b := f.issue(f.ca, "api")
	must(t, f.vol.EnsureServiceDir("api", certs.Owner{UID: -1, GID: -1}))
	f.publishRaw("api", map[string][]byte{FileServerCert: b.ServerCert, FileServerKey: b.ServerKey})
	rec := &logRecorder{}
	cfg := Config{Service: "api", Dir: f.dir("api"), Poll: testPoll, Logger: slog.New(rec)}
	level, err := Wait(context.Background(), cfg, 50*time.Millisecond)
	if err != nil || level != LevelTLS {
		t.Fatalf("got %s, %v; want tls (the server pair alone) and no error", level, err)
	}
	w := rec.warnings("", "")
	if len(w) != 1 {
		t.Fatalf("got %d warnings, want 1:\n%s", len(w), rec)
	}
	if got, want := w[0].attrs[keyMissing], "[client.crt client.key ca.crt]"; got != want {
		t.Errorf("got missing %s, want %s", got, want)
	}
	if got := w[0].attrs[keyLevel]; got != string(LevelTLS) {
		t.Errorf("got level %s in the warning, want tls", got)
	}
}

func TestWaitReturnsOnceTheBundleArrives(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	// CRANK_CERTS_DIR is the service's own dir, empty at start, as with a
	// volume subpath mounted before the controller wrote anything.
	env := map[string]string{EnvCertsDir: f.dir("api"), EnvEnvironment: "production"}
	cfg, err := FromEnv("api", func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	cfg.Poll = testPoll
	type result struct {
		level Level
		err   error
	}
	done := make(chan result, 1)
	go func() {
		level, err := Wait(context.Background(), cfg, 10*time.Second)
		done <- result{level, err}
	}()
	f.publish("api", f.issue(f.ca, "api"))
	select {
	case r := <-done:
		if r.err != nil || r.level != LevelMTLS {
			t.Errorf("got %s, %v; want mtls", r.level, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Wait did not return within 5s of the bundle's arrival")
	}
	if got := cfg.BundleDir(); got != f.dir("api") {
		t.Errorf("got bundle dir %s, want the service's own %s", got, f.dir("api"))
	}
}

func TestWaitEndsWithItsContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg := Config{Service: "api", Dir: t.TempDir(), Poll: testPoll, Logger: slog.New(slog.DiscardHandler)}
	if _, err := Wait(ctx, cfg, time.Hour); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
