package dockerwatch

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/errdefs"
)

// daemonBuffer answers the watchdog's query like the daemon does: the
// buffered events whose time lies in [since, until].
func daemonBuffer(t *testing.T, buf ...events.Message) func(events.ListOptions) ([]events.Message, error) {
	return func(o events.ListOptions) ([]events.Message, error) {
		since, until := parseUnixNano(t, o.Since), parseUnixNano(t, o.Until)
		var out []events.Message
		for _, m := range buf {
			if m.TimeNano >= since && m.TimeNano <= until {
				out = append(out, m)
			}
		}
		return out, nil
	}
}

func parseUnixNano(t *testing.T, s string) int64 {
	sec, nsec, ok := strings.Cut(s, ".")
	if !ok || len(nsec) != 9 {
		t.Errorf("got timestamp %q, want <seconds>.<9-digit nanoseconds>", s)
		return 0
	}
	a, err1 := strconv.ParseInt(sec, 10, 64)
	b, err2 := strconv.ParseInt(nsec, 10, 64)
	if err1 != nil || err2 != nil {
		t.Errorf("got unparseable timestamp %q", s)
	}
	return a*int64(time.Second) + b
}

func withWatchdog() harnessOpt {
	return withOptions(func(o *WatcherOptions) {
		o.WatchdogInterval = 2 * time.Millisecond
		o.WatchdogGrace = time.Second
	})
}

func containerEvent(id string, at time.Time) events.Message {
	return events.Message{
		Type: events.ContainerEventType, Action: events.ActionStart,
		Actor: events.Actor{ID: id}, Time: at.Unix(), TimeNano: at.UnixNano(),
	}
}

func TestWatchdogReconnectsAHungStream(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{containers: summaries("c1")}
	h := startWatcher(t, api, withWatchdog())
	waitFor(t, "ready", h.w.Ready)

	// The daemon published an event 1s after we connected; our stream never
	// delivered it. 10s later it is well past the grace period.
	missed := containerEvent("lost", h.clock.Now().Add(time.Second))
	api.set(func(f *fakeAPI) { f.past = daemonBuffer(t, missed) })
	h.clock.Advance(10 * time.Second)

	waitFor(t, "re-subscribe after the watchdog fired", func() bool { return api.count("subscribe") == 2 })
	waitFor(t, "ready after reconnect", h.w.Ready)
	if got, want := h.metrics.reconnectCount(), 1; got != want {
		t.Errorf("got %d reconnects, want %d", got, want)
	}
	if got, want := h.q.count("c1"), 2; got != want {
		t.Errorf("got c1 enqueued %d times, want %d (re-list after reconnect)", got, want)
	}
}

func TestWatchdogLeavesAHealthyStreamAlone(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		// buffer is what the daemon holds, relative to connect time.
		buffer []time.Duration
		// delivered is what our stream receives, relative to connect time.
		delivered []time.Duration
	}{
		"should not reconnect a stream that is merely silent": {},
		"should not reconnect when the stream delivered what the daemon reports": {
			buffer:    []time.Duration{time.Second, 2 * time.Second},
			delivered: []time.Duration{time.Second, 2 * time.Second},
		},
		"should not count events younger than the grace period as missed": {
			buffer: []time.Duration{9500 * time.Millisecond},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			api := &fakeAPI{}
			h := startWatcher(t, api, withWatchdog())
			waitFor(t, "ready", h.w.Ready)
			start := h.clock.Now()
			var buf []events.Message
			for _, d := range tc.buffer {
				buf = append(buf, containerEvent("c", start.Add(d)))
			}
			for _, d := range tc.delivered {
				api.stream(t, 1).send(t, containerEvent("c", start.Add(d)))
			}
			api.set(func(f *fakeAPI) { f.past = daemonBuffer(t, buf...) })
			h.clock.Advance(10 * time.Second)

			waitFor(t, "several watchdog checks", func() bool { return api.count("query") >= 5 })
			if got, want := api.count("subscribe"), 1; got != want {
				t.Errorf("got %d subscriptions, want %d", got, want)
			}
		})
	}
}

func TestWatchdogReconnectsWhenPingFails(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	h := startWatcher(t, api, withWatchdog())
	waitFor(t, "ready", h.w.Ready)
	api.set(func(f *fakeAPI) { f.pingErr = errors.New("dial unix: connection refused") })
	waitFor(t, "re-subscribe", func() bool { return api.count("subscribe") >= 2 })
	if got := h.metrics.reconnectCount(); got < 1 {
		t.Errorf("got %d reconnects, want at least 1", got)
	}
}

func TestWatchdogFallsBackToPingOnlyWhenTheQueryIsRejected(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	api.past = func(events.ListOptions) ([]events.Message, error) {
		return nil, errdefs.InvalidParameter(errors.New("invalid until"))
	}
	h := startWatcher(t, api, withWatchdog())
	waitFor(t, "ready", h.w.Ready)
	h.clock.Advance(10 * time.Second)
	waitFor(t, "the rejected query", func() bool { return api.count("query") >= 1 })
	pings := api.count("ping")
	waitFor(t, "five more pings", func() bool { return api.count("ping") >= pings+5 })
	if got, want := api.count("query"), 1; got != want {
		t.Errorf("got %d queries, want %d: ping only after the daemon rejected it", got, want)
	}
	if got, want := api.count("subscribe"), 1; got != want {
		t.Errorf("got %d subscriptions, want %d", got, want)
	}
}

func TestWatchdogDoesNotReconnectWhenOnlyTheQueryFails(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	api.past = func(events.ListOptions) ([]events.Message, error) {
		return nil, errors.New("unexpected EOF")
	}
	h := startWatcher(t, api, withWatchdog())
	waitFor(t, "ready", h.w.Ready)
	h.clock.Advance(10 * time.Second)
	waitFor(t, "several failed queries", func() bool { return api.count("query") >= 5 })
	if got, want := api.count("subscribe"), 1; got != want {
		t.Errorf("got %d subscriptions, want %d: the ping succeeded, so the daemon is up", got, want)
	}
}
