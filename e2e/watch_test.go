//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// The real-engine proof of dockerwatch.Watcher. Each test puts a SockProxy
// between the watcher and the engine and breaks the connection; containers
// are created straight on the engine socket, bypassing the proxy, so they
// happen no matter what the proxy is doing.

const (
	watchSleeperImage = "crank-e2e-sleeper:test"
	watchLabel        = "crank.e2e"
)

// watchEngineSocket is the real engine's unix socket: DOCKER_HOST if it is
// a unix socket, else the default.
func watchEngineSocket() string {
	if h, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://"); ok {
		return h
	}
	return "/var/run/docker.sock"
}

// watchRequireEngine returns an SDK client talking straight to the engine.
// No engine: the test fails under CI=true (CI must not pass by skipping),
// and is skipped otherwise.
func watchRequireEngine(t *testing.T) *client.Client {
	t.Helper()
	c, err := dockerwatch.New("unix://" + watchEngineSocket())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = c.Ping(ctx)
	}
	if err != nil {
		msg := fmt.Sprintf("docker engine at unix://%s is unreachable: %v", watchEngineSocket(), err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg + " (set CI=true to make this a failure)")
	}
	t.Cleanup(func() { _ = c.Close() })
	t.Logf("engine API %s, client speaks %s", c.ServerAPIVersion(), c.SDK().ClientVersion())
	return c.SDK()
}

var (
	sleeperOnce sync.Once
	sleeperErr  error
)

// watchBuildSleeper builds, once per run, a FROM scratch image around a
// static binary that only sleeps: no registry, no base image needed.
func watchBuildSleeper(t *testing.T) {
	t.Helper()
	sleeperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "crank-e2e-sleeper")
		if err != nil {
			sleeperErr = err
			return
		}
		defer os.RemoveAll(dir)
		run := func(env []string, name string, args ...string) error {
			cmd := exec.Command(name, args...)
			cmd.Env = append(os.Environ(), env...)
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
			}
			return nil
		}
		if sleeperErr = run([]string{"CGO_ENABLED=0"}, "go", "build", "-o", filepath.Join(dir, "sleeper"), "./testdata/sleeper"); sleeperErr != nil {
			return
		}
		dockerfile := "FROM scratch\nCOPY sleeper /sleeper\nENTRYPOINT [\"/sleeper\"]\n"
		if sleeperErr = os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); sleeperErr != nil {
			return
		}
		// The classic builder: engines as old as 20.10 have it, and the
		// buildx plugin may be missing.
		sleeperErr = run([]string{"DOCKER_BUILDKIT=0", "DOCKER_HOST=unix://" + watchEngineSocket()},
			"docker", "build", "-q", "--label", watchLabel+"=1", "-t", watchSleeperImage, dir)
	})
	if sleeperErr != nil {
		t.Fatalf("building %s: %v", watchSleeperImage, sleeperErr)
	}
}

// watchCreateSleeper creates (and, if start, starts) a labelled container
// that the test removes when it ends.
func watchCreateSleeper(t *testing.T, cli *client.Client, start bool) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix)
	resp, err := cli.ContainerCreate(ctx,
		&container.Config{Image: watchSleeperImage, Labels: map[string]string{watchLabel: "1"}},
		&container.HostConfig{NetworkMode: "none"},
		nil, nil, "crank-e2e-watch-"+hex.EncodeToString(suffix))
	if err != nil {
		t.Fatalf("creating container: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cli.ContainerRemove(ctx, resp.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
			t.Errorf("removing container %s: %v", resp.ID, err)
		}
	})
	if start {
		if err := cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			t.Fatalf("starting container %s: %v", resp.ID, err)
		}
	}
	return resp.ID
}

// watchQueue is an Enqueuer that remembers every key.
type watchQueue struct {
	mu   sync.Mutex
	seen map[string]int
}

func (q *watchQueue) Add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.seen == nil {
		q.seen = map[string]int{}
	}
	q.seen[key]++
}

func (q *watchQueue) count(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.seen[key]
}

// watchMetrics counts events by action, and reconnects.
type watchMetrics struct {
	mu         sync.Mutex
	events     map[string]int
	reconnects int
}

func (m *watchMetrics) Event(action string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.events == nil {
		m.events = map[string]int{}
	}
	m.events[action]++
}

func (m *watchMetrics) Reconnect() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reconnects++
}

func (m *watchMetrics) reconnectCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.reconnects
}

func (m *watchMetrics) eventCount(action string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events[action]
}

// startProxiedWatcher runs a Watcher whose every request goes through proxy.
func startProxiedWatcher(t *testing.T, proxy *SockProxy, opts dockerwatch.WatcherOptions) (*dockerwatch.Watcher, *watchQueue, *watchMetrics) {
	t.Helper()
	c, err := dockerwatch.New("unix://" + proxy.Path())
	if err != nil {
		t.Fatalf("dockerwatch.New: %v", err)
	}
	q, m := &watchQueue{}, &watchMetrics{}
	opts.Metrics = m
	opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	w := dockerwatch.NewWatcher(c.SDK(), q, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Start returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Start did not return within 10s of cancel")
		}
		_ = c.Close()
	})
	return w, q, m
}

func TestWatchEventsReachTheQueue(t *testing.T) {
	t.Parallel()
	cli := watchRequireEngine(t)
	watchBuildSleeper(t)
	proxy := StartSockProxy(t, watchEngineSocket())
	w, q, m := startProxiedWatcher(t, proxy, dockerwatch.WatcherOptions{})
	WaitFor(t, 10*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready" })

	id := watchCreateSleeper(t, cli, true)
	// create and start: two events for the same key.
	WaitFor(t, 10*time.Second, func() (bool, string) {
		return q.count(id) >= 2, fmt.Sprintf("got %d keys enqueued for the container, want 2 (create and start)", q.count(id))
	})
	if m.eventCount("create") < 1 || m.eventCount("start") < 1 {
		t.Errorf("got create=%d start=%d events counted, want at least 1 each", m.eventCount("create"), m.eventCount("start"))
	}
	if got := m.reconnectCount(); got != 0 {
		t.Errorf("got %d reconnects, want 0", got)
	}
}

func TestWatchReconnectsAfterTheConnectionIsCut(t *testing.T) {
	t.Parallel()
	cli := watchRequireEngine(t)
	watchBuildSleeper(t)
	proxy := StartSockProxy(t, watchEngineSocket())
	// A 1s first backoff (0.5-1.5s with jitter) leaves room to create a
	// container while the watcher is disconnected.
	w, q, m := startProxiedWatcher(t, proxy, dockerwatch.WatcherOptions{InitialBackoff: time.Second})
	WaitFor(t, 10*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready" })

	cutAt := time.Now()
	proxy.Cut()
	noticed := WaitFor(t, 10*time.Second, func() (bool, string) { return m.reconnectCount() >= 1, "the watcher has not noticed the cut" })
	during := watchCreateSleeper(t, cli, false)
	if w.Ready() {
		t.Fatalf("got Ready() = true right after creating the in-between container, want false: it was not created during the cut")
	}
	WaitFor(t, 15*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready after the cut" })
	reconnect := time.Since(cutAt)
	t.Logf("cut noticed after %v; ready again %v after the cut (1s initial backoff, ±50%% jitter)", noticed, reconnect)

	WaitFor(t, 10*time.Second, func() (bool, string) {
		return q.count(during) >= 1, "the container created during the cut is not enqueued by the re-list"
	})
	after := watchCreateSleeper(t, cli, true)
	WaitFor(t, 10*time.Second, func() (bool, string) {
		return q.count(after) >= 2, fmt.Sprintf("got %d keys enqueued for the container created after the reconnect, want 2 (create and start)", q.count(after))
	})
}

func TestWatchReconnectTimeWithDefaultBackoff(t *testing.T) {
	t.Parallel()
	watchRequireEngine(t)
	proxy := StartSockProxy(t, watchEngineSocket())
	w, _, _ := startProxiedWatcher(t, proxy, dockerwatch.WatcherOptions{})
	WaitFor(t, 10*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready" })
	cutAt := time.Now()
	proxy.Cut()
	WaitFor(t, 10*time.Second, func() (bool, string) { return !w.Ready(), "watcher still ready after the cut" })
	WaitFor(t, 10*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready after the cut" })
	t.Logf("reconnect time with default backoff (500ms ±50%%): %v from cut to ready", time.Since(cutAt))
}

func TestWatchdogReconnectsThroughAHungProxy(t *testing.T) {
	t.Parallel()
	cli := watchRequireEngine(t)
	watchBuildSleeper(t)
	proxy := StartSockProxy(t, watchEngineSocket())
	w, q, m := startProxiedWatcher(t, proxy, dockerwatch.WatcherOptions{
		WatchdogInterval: 500 * time.Millisecond,
		WatchdogGrace:    500 * time.Millisecond,
		RequestTimeout:   time.Second,
		InitialBackoff:   200 * time.Millisecond,
		MaxBackoff:       time.Second,
	})
	WaitFor(t, 10*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready" })

	hungAt := time.Now()
	proxy.Hang()
	detected := WaitFor(t, 10*time.Second, func() (bool, string) {
		return m.reconnectCount() >= 1, "the watchdog has not torn down the hung connection"
	})
	t.Logf("hang detected after %v (watchdog interval 500ms + ping timeout 1s)", detected)
	during := watchCreateSleeper(t, cli, true)
	if w.Ready() {
		t.Errorf("got Ready() = true while the proxy is hung, want false")
	}

	proxy.Resume()
	resumedAt := time.Now()
	WaitFor(t, 15*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready after resume" })
	t.Logf("ready %v after resume, %v after the hang began", time.Since(resumedAt), time.Since(hungAt))
	WaitFor(t, 10*time.Second, func() (bool, string) {
		return q.count(during) >= 1, "the container created during the hang is not enqueued"
	})
}

func TestWatchdogCatchesAHungStreamWhilePingsStillWork(t *testing.T) {
	t.Parallel()
	cli := watchRequireEngine(t)
	watchBuildSleeper(t)
	proxy := StartSockProxy(t, watchEngineSocket())
	w, q, m := startProxiedWatcher(t, proxy, dockerwatch.WatcherOptions{
		WatchdogInterval: 500 * time.Millisecond,
		WatchdogGrace:    500 * time.Millisecond,
		RequestTimeout:   2 * time.Second,
		InitialBackoff:   200 * time.Millisecond,
		MaxBackoff:       time.Second,
	})
	WaitFor(t, 10*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready" })

	// The watchdog's own bounded events query may be in flight too (a
	// loaded daemon answers it slowly); stalling it as well changes
	// nothing, since it times out and the next one goes through.
	if n := proxy.HangEventStreams(); n < 1 {
		t.Fatalf("got %d event-stream connections stalled, want the watcher's stream", n)
	}
	// Events the daemon publishes now never reach the stream; the
	// watchdog's query sees them.
	lost := watchCreateSleeper(t, cli, true)
	detected := WaitFor(t, 15*time.Second, func() (bool, string) {
		return m.reconnectCount() >= 1, "the watchdog has not noticed the missed events"
	})
	t.Logf("hung stream detected %v after the missed events", detected)
	WaitFor(t, 10*time.Second, func() (bool, string) { return w.Ready(), "watcher not ready after reconnect" })
	WaitFor(t, 10*time.Second, func() (bool, string) {
		return q.count(lost) >= 1, "the container whose events were missed is not enqueued"
	})
	proxy.Resume()
}
