package dockerwatch

import (
	"strings"
	"sync"
	"time"
)

// Intervention is a stop that someone other than the controller made on a
// container: `docker stop`, `docker kill`, `docker-compose down`, `docker
// rm -f`. Its events arrive before the container leaves the running state
// (kill, then die, stop, destroy), and a server that drains closes its
// listener at once while its process runs on: a probe in that window sees
// "down" on a container the engine still calls running.
type Intervention struct {
	At     time.Time // the event's time, as the daemon stamped it
	Action string    // kill, stop or destroy
	Signal string    // for kill: the signal number the event carried
}

// ownGrace is how long after one of the controller's own actions returns
// its events may still arrive and must not count as someone else's.
const ownGrace = 5 * time.Second

// interventionTTL is how long a stop is remembered. Stops matter only until
// the container has left the running state, which a stop timeout bounds.
const interventionTTL = 15 * time.Minute

// reloadSignals are kill signals that ask a process to reload, not to stop:
// HUP, USR1, USR2 and WINCH, as numbers (the events carry numbers).
var reloadSignals = map[string]bool{"1": true, "10": true, "12": true, "28": true}

// Interventions tells the controller's own container actions from everyone
// else's. The Client marks each action it takes; the Watcher notes every
// kill, stop and destroy event; the reconciler asks whether a container is
// being stopped by someone else before it acts. Safe for concurrent use;
// noting an event is a map write, cheap enough for the receive loop.
type Interventions struct {
	clock func() time.Time

	mu        sync.Mutex
	own       map[string]time.Time // id -> end of our action plus ownGrace; zero while in flight
	stops     map[string]Intervention
	lastEvent map[string]time.Time
	creates   map[string]Arrival
	prunedAt  time.Time
}

// Arrival is when a container's create event happened, as the daemon
// stamped it, and when the controller received it: the two ends of the
// engine's own delay, before the controller's.
type Arrival struct {
	EventAt, ReceivedAt time.Time
}

// NewInterventions returns an empty tracker; a nil clock means time.Now.
func NewInterventions(clock func() time.Time) *Interventions {
	if clock == nil {
		clock = time.Now
	}
	return &Interventions{clock: clock, own: map[string]time.Time{}, stops: map[string]Intervention{},
		lastEvent: map[string]time.Time{}, creates: map[string]Arrival{}}
}

// Begin marks an action of the controller's own on id; the returned func
// ends it. Events for id until ownGrace after the end are the controller's.
func (iv *Interventions) Begin(id string) (end func()) {
	if iv == nil {
		return func() {}
	}
	iv.mu.Lock()
	iv.own[id] = time.Time{}
	iv.mu.Unlock()
	return func() {
		iv.mu.Lock()
		iv.own[id] = iv.clock().Add(ownGrace)
		iv.mu.Unlock()
	}
}

// Note records one container event. Kills with a reload signal and events
// inside the controller's own action windows are not interventions.
func (iv *Interventions) Note(id, action, signal string, at time.Time) {
	if iv == nil || id == "" {
		return
	}
	action, _, _ = strings.Cut(action, ":")
	iv.mu.Lock()
	defer iv.mu.Unlock()
	iv.pruneLocked(at)
	if at.After(iv.lastEvent[id]) {
		iv.lastEvent[id] = at
	}
	switch action {
	case "create":
		iv.creates[id] = Arrival{EventAt: at, ReceivedAt: iv.clock()}
		return
	case "kill":
		if reloadSignals[signal] {
			return
		}
	case "stop", "destroy":
	default:
		return
	}
	if end, ours := iv.own[id]; ours && (end.IsZero() || !at.After(end)) {
		return
	}
	iv.stops[id] = Intervention{At: at, Action: action, Signal: signal}
}

// StoppedByOther returns the latest stop of id that the controller did not
// make, if it happened after since (the process's start: a container
// started again after a stop is no longer being stopped).
func (iv *Interventions) StoppedByOther(id string, since time.Time) (Intervention, bool) {
	if iv == nil {
		return Intervention{}, false
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	s, ok := iv.stops[id]
	if !ok || !s.At.After(since) {
		return Intervention{}, false
	}
	return s, true
}

// TakeCreated returns and forgets the arrival of id's create event, so the
// first bundle written for a new container is measured once.
func (iv *Interventions) TakeCreated(id string) (Arrival, bool) {
	if iv == nil {
		return Arrival{}, false
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	a, ok := iv.creates[id]
	delete(iv.creates, id)
	return a, ok
}

// LastEventAt returns the time of the newest event seen for id, zero if none.
func (iv *Interventions) LastEventAt(id string) time.Time {
	if iv == nil {
		return time.Time{}
	}
	iv.mu.Lock()
	defer iv.mu.Unlock()
	return iv.lastEvent[id]
}

// pruneLocked drops entries older than interventionTTL, at most once a
// minute, so the maps stay as small as the set of recently active
// containers.
func (iv *Interventions) pruneLocked(now time.Time) {
	if now.Sub(iv.prunedAt) < time.Minute {
		return
	}
	iv.prunedAt = now
	cutoff := now.Add(-interventionTTL)
	for id, t := range iv.lastEvent {
		if t.Before(cutoff) {
			delete(iv.lastEvent, id)
			delete(iv.stops, id)
			delete(iv.creates, id)
		}
	}
	for id, end := range iv.own {
		if !end.IsZero() && end.Before(cutoff) {
			delete(iv.own, id)
		}
	}
}
