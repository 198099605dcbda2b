package reconcile

import (
	"sync"
	"time"
)

// Spacing is the global action rate limit: at most one container action
// (restart, signal, relabel) per Interval across the whole stack. It is what
// staggers remediation so a stack is never restarted at once, whether the
// cause is a bad policy, a renewal wave or a CA rollover.
type Spacing struct {
	Interval time.Duration

	mu   sync.Mutex
	next time.Time
}

// Reserve implements RateLimiter.
func (s *Spacing) Reserve(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Before(s.next) {
		return s.next.Sub(now)
	}
	s.next = now.Add(s.Interval)
	return 0
}
