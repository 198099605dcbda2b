//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// WaitFor is the one way e2e tests wait: it polls cond until it reports
// true and returns how long that took. cond's status says what is still
// missing; when timeout passes, the test fails with the last status. Polls
// start 5ms apart and back off to 500ms, so a quick condition is seen
// within milliseconds (the returned time is a fair measure) and a long wait
// costs few calls. Use it instead of sleeping, also before asserting that
// something did not happen: wait for evidence that it would have happened
// by now.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	interval := 5 * time.Millisecond
	for checks := 1; ; checks++ {
		ok, status := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s (%d checks); last status: %s", timeout, checks, status)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended after %s of waiting; last status: %s", time.Since(start).Round(time.Millisecond), status)
		case <-time.After(interval):
		}
		interval = min(interval*2, 500*time.Millisecond)
	}
}
