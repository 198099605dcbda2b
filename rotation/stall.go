package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// DefaultStallAfter is how long a service may block a phase before it is
// reported as stalled when the Rotator is not told: three probe intervals
// at the default --probe-interval (30s).
const DefaultStallAfter = 90 * time.Second

// Metrics receives the rollover's gauges. A nil Metrics is valid.
type Metrics interface {
	// RolloverStalled reports how many services have blocked the current
	// phase longer than the stall threshold, by what they lack; a reason
	// missing from the map is zero.
	RolloverStalled(byLack map[WaitReason]int)
}

// stallThreshold is how long a service may block a phase before it is
// called stalled: after, plus one action interval per waited-for service,
// because the global action limit restarts them one at a time and the last
// one legitimately waits its turn.
func stallThreshold(after, spacing time.Duration, waiting int) time.Duration {
	if after <= 0 {
		after = DefaultStallAfter
	}
	return after + time.Duration(waiting)*max(spacing, 0)
}

// markStalls carries since (service -> when the phase started waiting for
// it) over to the blockers of p, starting the clock at now for a new one
// and forgetting services no longer waited for, and marks the blockers
// that waited longer than threshold. Pure: it returns the new map.
func markStalls(p Progress, since map[string]time.Time, now time.Time, threshold time.Duration) (Progress, map[string]time.Time) {
	next := make(map[string]time.Time, len(p.Blockers))
	blockers := make([]Blocker, len(p.Blockers))
	for i, b := range p.Blockers {
		at, ok := since[b.Service]
		if !ok || at.IsZero() || at.After(now) {
			at = now
		}
		next[b.Service] = at
		b.Since = at
		b.Stalled = now.Sub(at) > threshold
		blockers[i] = b
	}
	p.Blockers = blockers
	if len(next) == 0 {
		next = nil
	}
	return p, next
}

// notes remembers what was already reported in the current phase, so each
// skipped member and each stall is logged once (again if its reason
// changes), not on every step.
type notes struct {
	phase  string
	skips  map[string]SkipReason // container -> reason logged
	stalls map[string]WaitReason // service -> what it lacked when logged
}

func (n *notes) reset(phase string) {
	if n.phase == phase && n.skips != nil {
		return
	}
	n.phase, n.skips, n.stalls = phase, map[string]SkipReason{}, map[string]WaitReason{}
}

// report logs, once each, the members the phase does not wait for and the
// services that stalled it, and updates the stalled gauge. A stall is a
// WARN, an ERROR in production, where a rollover that does not finish
// leaves the old CA trusted.
func (r *Rotator) report(meta Meta, p Progress, now time.Time) {
	r.notes.reset(string(meta.Phase) + "/" + meta.Successor)
	log := r.logger()
	for _, k := range p.Skipped {
		if r.notes.skips[k.Container] == k.Reason {
			continue
		}
		r.notes.skips[k.Container] = k.Reason
		log.Info(fmt.Sprintf("CA rollover: the %s phase does not wait for %s (%s): %s: %s", meta.Phase, k.Service, k.Container, k.Reason, k.Message),
			keyPhase, string(meta.Phase), keyService, k.Service, keyContainer, k.Container, keyReason, string(k.Reason))
	}
	level := slog.LevelWarn
	if r.Production {
		level = slog.LevelError
	}
	byLack := map[WaitReason]int{}
	for _, b := range p.Blockers {
		if !b.Stalled {
			continue
		}
		byLack[b.Lacks]++
		if r.notes.stalls[b.Service] == b.Lacks {
			continue
		}
		r.notes.stalls[b.Service] = b.Lacks
		log.Log(context.Background(), level, fmt.Sprintf("CA rollover: the %s phase has waited %s for %s (%s), which lacks %s: %s",
			meta.Phase, now.Sub(b.Since).Round(time.Second), b.Service, b.Container, b.Lacks, b.Message),
			keyPhase, string(meta.Phase), keyService, b.Service, keyContainer, b.Container, keyLacks, string(b.Lacks), keySince, b.Since)
	}
	if r.Metrics != nil {
		r.Metrics.RolloverStalled(byLack)
	}
}
