package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/state"
)

// RecordLister is the state store as the sweep uses it.
type RecordLister interface {
	List() ([]state.Record, error)
	Delete(id string) error
}

// Sweeper finds what no pass of a service can: the bundle generations of
// identities whose service went while the controller was down (or on
// another node), and the records of such services' tasks. It runs at
// start and then every Every.
type Sweeper struct {
	Reconciler *Reconciler
	Records    RecordLister
	Every      time.Duration
	Log        *slog.Logger
}

// Start sweeps until ctx ends; a failed sweep is logged and retried.
func (s *Sweeper) Start(ctx context.Context) error {
	every := s.Every
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.Log.Warn("sweeping old bundle generations and records; retried at the next sweep", keyError, err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Sweep removes the generations of every identity no service holds and
// the records of tasks whose service is gone.
func (s *Sweeper) Sweep(ctx context.Context) error {
	r := s.Reconciler
	svcs, err := r.Engine.Services(ctx)
	if err != nil {
		return err
	}
	held, names := map[string]bool{}, map[string]bool{}
	for _, svc := range svcs {
		names[svc.Name] = true
		if id, ok := r.holds(svc); ok {
			held[id] = true
		}
	}
	secrets, err := r.Engine.Secrets(ctx, LabelManaged+"="+ManagedBundle)
	if err != nil {
		return err
	}
	var errs []error
	done := map[string]bool{}
	for _, sec := range secrets {
		id := sec.Labels[LabelIdentity]
		if id == "" || held[id] || done[id] {
			continue
		}
		done[id] = true
		errs = append(errs, r.collectGone(ctx, id))
	}
	return errors.Join(append(errs, s.sweepRecords(names))...)
}

// sweepRecords deletes the records of tasks whose service is not among
// names. A task record's name is <service>.<slot> (or .<node>).
func (s *Sweeper) sweepRecords(names map[string]bool) error {
	recs, err := s.Records.List()
	if err != nil {
		return fmt.Errorf("listing records: %w", err)
	}
	for _, rec := range recs {
		i := strings.LastIndex(rec.ContainerName, ".")
		if i > 0 && names[rec.ContainerName[:i]] {
			continue
		}
		if err := s.Records.Delete(rec.ContainerID); err != nil {
			return fmt.Errorf("deleting the record of task %s: %w", rec.ContainerName, err)
		}
	}
	return nil
}
