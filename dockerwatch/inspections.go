package dockerwatch

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"
)

// Inspections remembers the last inspect of each container until the event
// stream or a resync says it changed, as an informer's cache does: a
// periodic pass over a settled container (its probe, every 30 s) then costs
// no inspect, which was a tenth of the controller's CPU with a thousand
// containers, and as much again of the engine's.
//
// Every watched event of a container, and every container a resync finds
// changed, forgets it (Changed); a reconnect forgets everything
// (ChangedAll), since events may have been missed. An inspect that began
// before such a change is not remembered, so a reply already on its way
// cannot bring back what the change made stale. An entry older than maxAge
// is asked again whatever the events said. A nil *Inspections remembers
// nothing. Safe for concurrent use.
type Inspections struct {
	mu     sync.Mutex
	clock  func() time.Time
	maxAge time.Duration
	known  map[string]inspected
	seq    uint64            // counts changes and inspects begun
	since  map[string]uint64 // the seq of each container's last change
	all    uint64            // the seq of the last ChangedAll
}

type inspected struct {
	c  Container
	at time.Time
}

// DefaultInspectMaxAge bounds how long an inspect is reused: the default
// resync interval.
const DefaultInspectMaxAge = DefaultResync

// maxChanged bounds the change marks kept; past it they are all dropped,
// as by ChangedAll.
const maxChanged = 8192

// NewInspections returns an empty cache; a nil clock means time.Now, a
// maxAge of 0 DefaultInspectMaxAge.
func NewInspections(clock func() time.Time, maxAge time.Duration) *Inspections {
	if clock == nil {
		clock = time.Now
	}
	if maxAge <= 0 {
		maxAge = DefaultInspectMaxAge
	}
	return &Inspections{clock: clock, maxAge: maxAge, known: map[string]inspected{}, since: map[string]uint64{}}
}

// Changed forgets container id: something about it may have changed.
func (s *Inspections) Changed(id string) {
	if s == nil || id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	delete(s.known, id)
	if len(s.since) >= maxChanged {
		s.forgetAllLocked()
		return
	}
	s.since[id] = s.seq
}

// ChangedAll forgets every container.
func (s *Inspections) ChangedAll() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	s.forgetAllLocked()
}

func (s *Inspections) forgetAllLocked() {
	s.all = s.seq
	clear(s.known)
	clear(s.since)
}

// lookup returns a copy of what is known of id, if it is young enough.
func (s *Inspections) lookup(id string) (Container, bool) {
	if s == nil {
		return Container{}, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.known[id]
	if !ok || s.clock().Sub(e.at) >= s.maxAge {
		return Container{}, false
	}
	return e.c.clone(), true
}

// begin marks the start of an inspect of id; remember takes the mark.
func (s *Inspections) begin() uint64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return s.seq
}

// remember keeps c, inspected from mark on, unless id (or everything)
// changed after the inspect began.
func (s *Inspections) remember(id string, c Container, mark uint64) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.all > mark || s.since[id] > mark {
		return
	}
	s.known[id] = inspected{c: c.clone(), at: s.clock()}
}

// Known is Inspect answered from Inspections where it can be: for the look
// a reconcile starts with. Anything about to act on a container asks
// Client.Inspect, which always asks the engine.
func (c *Client) Known(ctx context.Context, id string) (Container, error) {
	if ctr, ok := c.Inspections.lookup(id); ok {
		return ctr, nil
	}
	return c.Inspect(ctx, id)
}

// KnownGetter is c with Known as its Inspect, for a caller that takes any
// inspecting value.
func (c *Client) KnownGetter() KnownGetter { return KnownGetter{c} }

// KnownGetter's Inspect is its client's Known.
type KnownGetter struct{ c *Client }

// Inspect implements the one-method getter interfaces of callers.
func (k KnownGetter) Inspect(ctx context.Context, id string) (Container, error) {
	return k.c.Known(ctx, id)
}

// clone copies c's maps and slices, so a caller that changes what it got
// does not change what is remembered.
func (c Container) clone() Container {
	c.Labels, c.ImageLabels, c.Env = maps.Clone(c.Labels), maps.Clone(c.ImageLabels), maps.Clone(c.Env)
	c.Mounts, c.ExposedPorts = slices.Clone(c.Mounts), slices.Clone(c.ExposedPorts)
	if c.Networks != nil {
		nets := make(map[string]Network, len(c.Networks))
		for k, n := range c.Networks {
			n.Aliases = slices.Clone(n.Aliases)
			nets[k] = n
		}
		c.Networks = nets
	}
	return c
}
