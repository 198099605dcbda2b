package reconcile

import (
	"context"
	"log/slog"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// RecordLister lists the state's records.
type RecordLister interface {
	List() ([]state.Record, error)
}

// Sweeper enqueues every container the state remembers, at start and then
// every Every. The watcher's list only shows containers that exist; this is
// how records of containers destroyed while the controller was down (or
// during a cut event stream) are found and cleaned up by their reconcile.
type Sweeper struct {
	Records RecordLister
	Enqueue func(id string)
	// Every is the sweep interval; Tick, when set, also runs at most every
	// tickEvery, for gauges that follow state outside the reconciler.
	Every time.Duration
	Tick  func()
	Log   *slog.Logger
	// Clock and After are seams for tests; they default to time.Now and
	// time.After.
	Clock func() time.Time
	After func(time.Duration) <-chan time.Time
}

// tickEvery bounds how stale a Tick-maintained gauge may be.
const tickEvery = 30 * time.Second

// Start sweeps until ctx ends, then returns nil.
func (s *Sweeper) Start(ctx context.Context) error {
	now, after := s.Clock, s.After
	if now == nil {
		now = time.Now
	}
	if after == nil {
		after = time.After
	}
	var last time.Time
	for {
		if s.Tick != nil {
			s.Tick()
		}
		if t := now(); last.IsZero() || t.Sub(last) >= s.Every {
			last = t
			s.sweep()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-after(min(s.Every, tickEvery)):
		}
	}
}

func (s *Sweeper) sweep() {
	recs, err := s.Records.List()
	if err != nil {
		s.logger().Error("listing state records for sweep", keyError, err)
		return
	}
	for _, r := range recs {
		s.Enqueue(r.ContainerID)
	}
}

func (s *Sweeper) logger() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
