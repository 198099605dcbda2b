package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Enqueuer receives the keys (container IDs) the watcher sees. Add must not
// block: it is called from the event receive loop, and the daemon drops
// events for a subscriber that is slower than about 100ms.
type Enqueuer interface {
	Add(key string)
}

// EventsAPI is the part of the SDK client the Watcher uses, with the SDK's
// exact signatures. *client.Client (Client.SDK()) satisfies it.
type EventsAPI interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	ContainerList(ctx context.Context, options container.ListOptions) ([]container.Summary, error)
	Ping(ctx context.Context) (types.Ping, error)
}

// WatchMetrics is how the Watcher reports what it sees. Implementations must
// be cheap and non-blocking; Event is called from the receive loop.
type WatchMetrics interface {
	// Event counts one received event. action is the event's action with
	// any ": detail" suffix removed ("health_status: healthy" is
	// "health_status"), so label cardinality stays bounded.
	Event(action string)
	// Reconnect counts one lost or failed connection that is about to be
	// retried.
	Reconnect()
}

// Defaults for WatcherOptions; see the fields for why.
const (
	DefaultResync           = 5 * time.Minute
	DefaultStableAfter      = 30 * time.Second
	DefaultWatchdogInterval = 30 * time.Second
	DefaultWatchdogGrace    = 5 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultInitialBackoff   = 500 * time.Millisecond
	DefaultMaxBackoff       = 30 * time.Second
)

// WatcherOptions configures a Watcher. Zero values mean the defaults.
type WatcherOptions struct {
	// Resync is how often every container is enqueued again while
	// connected, to catch whatever the stream missed. Default 5m.
	Resync time.Duration
	// StableAfter is how long a connection must have lived for the
	// reconnect backoff to start again from InitialBackoff. Default 30s.
	StableAfter time.Duration
	// WatchdogInterval is how often the watchdog pings the daemon and checks
	// that the stream has not missed events. Default 30s.
	WatchdogInterval time.Duration
	// WatchdogGrace is how old an event the daemon reports must be before
	// the watchdog counts it as missed by our stream, so that events still
	// in flight are not mistaken for a hang. Default 5s.
	WatchdogGrace time.Duration
	// RequestTimeout bounds each request: subscribing (until the daemon
	// answers with headers), listing, pinging and the watchdog's events
	// query. Without it a half-open connection would hang the watcher.
	// Default 30s.
	RequestTimeout time.Duration
	// InitialBackoff and MaxBackoff shape the reconnect backoff: it doubles
	// from InitialBackoff up to MaxBackoff, with ±50% jitter, forever.
	// Defaults 500ms and 30s.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Metrics may be nil.
	Metrics WatchMetrics
	// Clock defaults to time.Now. It stamps connections (for StableAfter)
	// and the watchdog's query window; timers still run on real time.
	Clock func() time.Time
	// Interventions, when set, is told of every event, so the reconciler
	// can stand aside while someone else stops a container.
	Interventions *Interventions
	// Inspections, when set, forgets each key an event or a resync
	// enqueues (everything on a reconnect) before it is enqueued.
	Inspections *Inspections
}

func (o WatcherOptions) withDefaults() WatcherOptions {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Resync, DefaultResync)
	def(&o.StableAfter, DefaultStableAfter)
	def(&o.WatchdogInterval, DefaultWatchdogInterval)
	def(&o.WatchdogGrace, DefaultWatchdogGrace)
	def(&o.RequestTimeout, DefaultRequestTimeout)
	def(&o.InitialBackoff, DefaultInitialBackoff)
	def(&o.MaxBackoff, DefaultMaxBackoff)
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = noMetrics{}
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}

type noMetrics struct{}

func (noMetrics) Event(string) {}
func (noMetrics) Reconnect()   {}

// watchedActions are the container events that can change what a container
// needs: a new container (create), a (re)started process (start), one that
// is being stopped (kill, stop: they come before the process is gone, and
// tell the controller to stand aside) or went away (die, destroy), and
// health changes. The daemon matches "health_status" against
// "health_status: healthy" etc. (moby#25798).
var watchedActions = []events.Action{
	events.ActionCreate, events.ActionStart, events.ActionKill, events.ActionStop,
	events.ActionDie, events.ActionDestroy, events.ActionHealthStatus,
}

// changeActions change what an inspect says without changing the process:
// a new name, restart policy, a pause, and a network connected or
// disconnected (a network event naming the container). They keep
// Inspections true and queue nothing: every start comes with a connect,
// and a second reconcile of each start would double a start storm's work.
// What they change is seen at the container's next pass, its probe.
var changeActions = []events.Action{
	events.ActionRename, events.ActionUpdate, events.ActionPause, events.ActionUnPause,
	events.ActionConnect, events.ActionDisconnect,
}

func eventFilters() filters.Args {
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("type", string(events.NetworkEventType)))
	for _, a := range slices.Concat(watchedActions, changeActions) {
		f.Add("event", string(a))
	}
	return f
}

// streamAPI is what every Watcher needs of the daemon, whatever it watches:
// the event stream and a ping for the watchdog.
type streamAPI interface {
	Events(ctx context.Context, options events.ListOptions) (<-chan events.Message, <-chan error)
	Ping(ctx context.Context) (types.Ping, error)
}

// source is what a Watcher watches: which events it subscribes to, which
// key ("" for none) an event concerns, and how to list every key with a
// fingerprint of its state, which the resync compares. Containers are one
// source (containerSource); swarm services are another (swarm_watch.go).
type source interface {
	filters() filters.Args
	key(m events.Message) string
	// queues reports whether m's key is queued, or only forgotten by
	// Inspections.
	queues(m events.Message) bool
	list(ctx context.Context) (map[string]string, error)
	// countKey is the log key for how many keys a list enqueued.
	countKey() string
}

// containerSource watches containers, keyed by container ID.
type containerSource struct{ api EventsAPI }

func (containerSource) filters() filters.Args { return eventFilters() }
func (containerSource) key(m events.Message) string {
	if m.Type == events.NetworkEventType {
		return m.Actor.Attributes["container"] // "" for a network's own create or destroy
	}
	return m.Actor.ID
}
func (containerSource) countKey() string { return keyContainers }
func (containerSource) queues(m events.Message) bool {
	return m.Type == events.ContainerEventType && !slices.Contains(changeActions, m.Action)
}
func (s containerSource) list(ctx context.Context) (map[string]string, error) {
	list, err := s.api.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := make(map[string]string, len(list))
	for _, c := range list {
		out[c.ID] = string(c.State)
	}
	return out, nil
}

// Watcher turns Docker events into keys on a queue. See Start.
type Watcher struct {
	api  streamAPI
	src  source
	q    Enqueuer
	opts WatcherOptions
	log  *slog.Logger

	connected atomic.Bool
	ready     atomic.Bool
	// lastEvent is the daemon timestamp (UnixNano) of the newest event
	// received on the current stream, or the connect time if none yet: the
	// watchdog asks the daemon what happened after it.
	lastEvent atomic.Int64
	// eventsCheckOff is set when the daemon rejects the watchdog's bounded
	// events query; the watchdog then only pings.
	eventsCheckOff atomic.Bool
	// seen is each container's state at the last list, by ID. Only the
	// goroutine that lists uses it, one connection at a time.
	seen map[string]string

	// Test seams.
	jitter float64                                         // backoff randomization factor
	sleep  func(ctx context.Context, d time.Duration) bool // false if ctx ended first
}

// NewWatcher returns a Watcher that reads events from api and adds container
// IDs to q.
func NewWatcher(api EventsAPI, q Enqueuer, opts WatcherOptions) *Watcher {
	return newWatcher(api, containerSource{api}, q, opts)
}

func newWatcher(api streamAPI, src source, q Enqueuer, opts WatcherOptions) *Watcher {
	opts = opts.withDefaults()
	return &Watcher{
		api:    api,
		src:    src,
		q:      q,
		opts:   opts,
		log:    opts.Logger,
		jitter: 0.5,
		sleep:  sleepCtx,
	}
}

// Connected reports whether the event stream is currently subscribed.
func (w *Watcher) Connected() bool { return w.connected.Load() }

// Ready reports whether the watcher is connected and has enqueued every
// container once on the current connection, i.e. whether the queue now
// reflects everything the daemon has. It turns false as soon as the
// connection is lost and true again only after the re-list.
func (w *Watcher) Ready() bool { return w.connected.Load() && w.ready.Load() }

// Start watches until ctx ends, then returns nil. It never gives up on the
// daemon: every lost or failed connection is retried with capped, jittered
// exponential backoff, which starts over once a connection has lived longer
// than StableAfter. Each connection subscribes first and lists second, so an
// event between the two cannot be lost (docker-gen#57): the daemon replays at
// most 256 events and a restart loses even those, so "since" cannot close a
// gap. Start must be called once.
func (w *Watcher) Start(ctx context.Context) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(w.opts.InitialBackoff),
		backoff.WithMaxInterval(w.opts.MaxBackoff),
		backoff.WithMultiplier(2),
		backoff.WithRandomizationFactor(w.jitter),
		backoff.WithMaxElapsedTime(0),
	)
	for {
		connectedAt, err := w.connectOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var lived time.Duration
		if !connectedAt.IsZero() {
			lived = w.opts.Clock().Sub(connectedAt)
		}
		if lived >= w.opts.StableAfter {
			b.Reset()
		}
		wait := b.NextBackOff()
		w.opts.Metrics.Reconnect()
		w.log.Warn("docker event stream lost, reconnecting",
			keyError, err, keyBackoff, wait, keyConnLived, lived)
		if !w.sleep(ctx, wait) {
			return nil
		}
	}
}

// connectOnce runs one connection: subscribe, then (concurrently with
// receiving) list and resync, with the watchdog alongside. It returns when the
// connection ends, with the reason, and the time it was established (zero if
// subscribing failed).
func (w *Watcher) connectOnce(ctx context.Context) (time.Time, error) {
	connCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	msgs, errs, err := w.subscribe(connCtx)
	if err != nil {
		return time.Time{}, err
	}
	connectedAt := w.opts.Clock()
	w.lastEvent.Store(connectedAt.UnixNano())
	w.connected.Store(true)

	var wg sync.WaitGroup
	wg.Go(func() { w.listAndResync(connCtx, cancel) })
	wg.Go(func() { w.watchdog(connCtx, cancel) })
	err = w.receive(connCtx, msgs, errs)

	// Flip the flags before waiting, so Ready is false the moment the
	// stream is known to be gone.
	w.connected.Store(false)
	w.ready.Store(false)
	cancel(err)
	wg.Wait()
	w.ready.Store(false)
	return connectedAt, err
}

var errSubscribeTimeout = errors.New("daemon did not answer the events subscription in time")

// subscribe starts the event stream. The SDK's Events blocks until the
// daemon has sent the response headers, which a half-open connection never
// does, so the wait is bounded by RequestTimeout.
func (w *Watcher) subscribe(ctx context.Context) (<-chan events.Message, <-chan error, error) {
	subCtx, cancel := context.WithCancelCause(ctx)
	timer := time.AfterFunc(w.opts.RequestTimeout, func() { cancel(errSubscribeTimeout) })
	msgs, errs := w.api.Events(subCtx, events.ListOptions{Filters: w.src.filters()})
	if !timer.Stop() {
		cancel(nil)
		return nil, nil, fmt.Errorf("subscribing to docker events: %w", errSubscribeTimeout)
	}
	// The stream lives as long as the connection; cancelling the parent
	// ends it. subCtx only added the timeout, which is now disarmed.
	context.AfterFunc(ctx, func() { cancel(nil) })
	return msgs, errs, nil
}

var (
	errStreamEnded  = errors.New("event stream ended (daemon restarted or connection closed)")
	errStreamClosed = errors.New("event stream channel closed")
)

// receive is the hot loop. It does nothing but hand keys to the queue and
// count; anything slower risks the daemon dropping events for us.
func (w *Watcher) receive(ctx context.Context, msgs <-chan events.Message, errs <-chan error) error {
	for {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case err, ok := <-errs:
			switch {
			case !ok || err == nil:
				return errStreamClosed
			case errors.Is(err, io.EOF):
				return errStreamEnded
			default:
				return fmt.Errorf("reading docker event stream: %w", err)
			}
		case m, ok := <-msgs:
			if !ok {
				return errStreamClosed
			}
			w.observe(m)
		}
	}
}

func (w *Watcher) observe(m events.Message) {
	// Noted before the key is queued, so the reconcile it triggers sees it.
	if m.Type != events.NetworkEventType {
		w.opts.Interventions.Note(m.Actor.ID, string(m.Action), m.Actor.Attributes["signal"], time.Unix(0, m.TimeNano))
	}
	if key := w.src.key(m); key != "" {
		w.opts.Inspections.Changed(key)
		if w.src.queues(m) {
			w.q.Add(key)
		}
	}
	if ts := m.TimeNano; ts > w.lastEvent.Load() {
		// Only this goroutine writes while connected, so load-then-store
		// cannot lose a newer value.
		w.lastEvent.Store(ts)
	}
	action, _, _ := strings.Cut(string(m.Action), ":")
	w.opts.Metrics.Event(action)
}

// listAndResync enqueues every container, marks the watcher ready, and then
// does it again every Resync until the connection ends. A failed first list
// ends the connection (we cannot claim to be ready); a failed resync is only
// logged, since the stream itself may be fine and the watchdog judges that.
func (w *Watcher) listAndResync(ctx context.Context, cancel context.CancelCauseFunc) {
	n, err := w.enqueueAll(ctx, true)
	if err != nil {
		cancel(fmt.Errorf("listing after subscribing: %w", err))
		return
	}
	if ctx.Err() != nil {
		return
	}
	w.ready.Store(true)
	w.log.Info("docker event stream connected", w.src.countKey(), n)

	t := time.NewTicker(w.opts.Resync)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := w.enqueueAll(ctx, false); err != nil && ctx.Err() == nil {
			w.log.Warn("periodic resync failed", keyError, err)
		}
	}
}

// enqueueAll lists every key (container) and enqueues it: all of them when
// full (a new connection, after which nothing the stream missed can be
// trusted), otherwise only those whose state changed since the last list,
// plus those gone from it. A periodic resync of a settled stack then costs
// one list. Nothing is lost by skipping the rest: each managed container is
// looked at again on its own schedule (its probe, its renewal), which the
// reconciler keeps, and a missed event that changed a container changes its
// state.
func (w *Watcher) enqueueAll(ctx context.Context, full bool) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.RequestTimeout)
	defer cancel()
	seen, err := w.src.list(ctx)
	if err != nil {
		return 0, err
	}
	if full {
		w.opts.Inspections.ChangedAll()
	}
	n := 0
	for _, key := range sortedKeys(seen) {
		if prev, ok := w.seen[key]; full || !ok || prev != seen[key] {
			w.opts.Inspections.Changed(key)
			w.q.Add(key)
			n++
		}
	}
	for id := range w.seen {
		if _, ok := seen[id]; !ok {
			w.opts.Inspections.Changed(id)
			w.q.Add(id) // gone without an event we saw: its record goes
			n++
		}
	}
	w.seen = seen
	return n, nil
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
