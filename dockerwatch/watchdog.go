package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
)

// errStreamHung is the cause of a connection the watchdog tore down because
// the daemon reported events our stream never delivered.
var errStreamHung = errors.New("event stream is hung: daemon reported events the stream did not deliver")

// watchdog guards one connection. A quiet stream is normal (a host can go
// hours without a container event), so silence proves nothing and is never
// a reason to reconnect. Instead, every WatchdogInterval it:
//
//  1. pings the daemon: no answer within RequestTimeout means the daemon or
//     the path to it is gone, and the stream with it;
//  2. asks the daemon, with a bounded (since/until) events query, which
//     matching events it published after the newest one our stream
//     delivered. If any is older than WatchdogGrace, our stream is hung
//     (e.g. a half-open proxy connection): the daemon sent it, we never got
//     it. This catches the hang without us having to generate events.
//
// The query's window is [last event we received, now-grace]; the daemon
// keeps its last 256 events in memory and answers from those. Timestamps on
// both ends of the comparison come from the daemon, except the baseline of a
// connection that has not received anything yet, which is our clock at
// connect time: with a daemon whose clock runs ahead of ours that can cost
// one spurious (harmless) reconnect.
func (w *Watcher) watchdog(ctx context.Context, cancel context.CancelCauseFunc) {
	t := time.NewTicker(w.opts.WatchdogInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := w.checkStream(ctx); err != nil {
			if ctx.Err() == nil {
				cancel(fmt.Errorf("watchdog: %w", err))
			}
			return
		}
	}
}

// checkStream returns an error if the connection must be torn down.
func (w *Watcher) checkStream(ctx context.Context) error {
	pctx, cancel := context.WithTimeout(ctx, w.opts.RequestTimeout)
	defer cancel()
	if _, err := w.api.Ping(pctx); err != nil {
		return fmt.Errorf("pinging docker daemon: %w", err)
	}
	if w.eventsCheckOff.Load() {
		return nil
	}
	since := w.lastEvent.Load()
	until := w.opts.Clock().Add(-w.opts.WatchdogGrace).UnixNano()
	if until <= since {
		return nil // the daemon rejects until < since; nothing to check yet
	}
	qctx, qcancel := context.WithTimeout(ctx, w.opts.RequestTimeout)
	defer qcancel()
	past, err := w.pastEvents(qctx, since, until)
	switch {
	case cerrdefs.IsInvalidArgument(err):
		// Every API version we support (1.41+) accepts since/until, so this
		// is a daemon we do not understand; ping-only still catches a dead
		// connection, just not a hung stream on a live one.
		w.eventsCheckOff.Store(true)
		w.log.Warn("daemon rejected the watchdog's events query, falling back to ping only",
			keyError, err)
		return nil
	case err != nil:
		// The ping just succeeded, so the daemon is up; a failed query is
		// not evidence of a hung stream. Try again next tick.
		if ctx.Err() == nil {
			w.log.Warn("watchdog events query failed", keyError, err)
		}
		return nil
	}
	// Re-read: the stream may have delivered them while we asked.
	last := w.lastEvent.Load()
	missed := 0
	for _, m := range past {
		if m.TimeNano > last {
			missed++
		}
	}
	if missed > 0 {
		return fmt.Errorf("%w (%d missed)", errStreamHung, missed)
	}
	return nil
}

// pastEvents returns the matching events the daemon published in
// [since, until]. With until in the past the daemon answers from its buffer
// and closes the response, so the SDK reports io.EOF at the end.
func (w *Watcher) pastEvents(ctx context.Context, since, until int64) ([]events.Message, error) {
	msgs, errs := w.api.Events(ctx, events.ListOptions{
		Since:   unixNanoString(since),
		Until:   unixNanoString(until),
		Filters: w.src.filters(),
	})
	var out []events.Message
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				return out, nil
			}
			out = append(out, m)
		case err, ok := <-errs:
			if !ok || err == nil || errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("querying past docker events: %w", err)
		}
	}
}

// unixNanoString formats t the way the API's since/until take it,
// "<seconds>.<nanoseconds>", so no precision is lost.
func unixNanoString(ns int64) string {
	t := time.Unix(0, ns)
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}
