package reconcile

import (
	"fmt"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

func TestNextProbeSpreadsContainersEvenlyOverTheInterval(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	interval := 30 * time.Second
	buckets := make([]int, 10) // 3 s each
	for i := range 1000 {
		id := fmt.Sprintf("%064x", i*7919)
		next := nextProbe(id, now, interval)
		if gap := next.Sub(now); gap <= interval/2 || gap > interval*3/2 {
			t.Fatalf("%s: got the next probe %s from now, want within (15s, 45s]", id, gap)
		}
		if again := nextProbe(id, now.Add(time.Millisecond), interval); !again.Equal(next) && again.Sub(next) != interval {
			t.Fatalf("%s: got %v then %v a millisecond later, want the same phase", id, next, again)
		}
		buckets[int(next.Sub(now.Add(interval/2))/(3*time.Second))%10]++
	}
	for i, n := range buckets {
		if n < 60 || n > 140 {
			t.Errorf("probes in the %d-th 3s of the interval: got %d of 1000, want about 100 (spread evenly): %v", i, n, buckets)
		}
	}
}

func TestReconcileDoesNotProbeASettledContainerAgainTooSoon(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.now = time.Now() // the volume stamps generations with real time
	c := f.addRunning()
	p := withProbing(f, Production, probe.MTLS, &fakeActions{})
	mustReconcile(t, f, c.ID) // writes the bundle
	c.StartedAt = time.Now()  // a process that started with it
	f.docker.byID[c.ID] = c
	f.now = f.now.Add(time.Minute)
	mustReconcile(t, f, c.ID) // settled at its desired level
	before := p.calls
	f.now = f.now.Add(5 * time.Second)
	mustReconcile(t, f, c.ID) // a resync: nothing changed
	if p.calls != before {
		t.Errorf("probes on a resync 5s after a probe of a settled container: got %d, want 0", p.calls-before)
	}
	c.StartedAt = f.now.Add(-time.Second) // restarted by someone
	f.docker.byID[c.ID] = c
	f.now = f.now.Add(time.Second)
	mustReconcile(t, f, c.ID)
	if p.calls != before+1 {
		t.Errorf("probes after the process restarted: got %d, want 1", p.calls-before)
	}
}

func TestReconcileNotesAProbeThatChangedNothingElse(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.now = time.Now() // the volume stamps generations with real time
	c := f.addRunning()
	withProbing(f, Production, probe.MTLS, &fakeActions{})
	mustReconcile(t, f, c.ID) // writes the bundle
	c.StartedAt = time.Now()
	f.docker.byID[c.ID] = c
	f.now = f.now.Add(time.Minute)
	mustReconcile(t, f, c.ID) // settled at its desired level
	settled, _, _ := f.records.Get(c.ID)
	notes := f.records.notes
	f.now = f.now.Add(30 * time.Second)
	mustReconcile(t, f, c.ID) // the periodic probe: the same level, plan and bundle
	if got := f.records.notes - notes; got != 1 {
		t.Errorf("notes after a probe that changed nothing else: got %d, want 1", got)
	}
	rec, _, _ := f.records.Get(c.ID)
	if !rec.Level.LastProbeAt.Equal(f.now) || rec.ObservedLevel != settled.ObservedLevel {
		t.Errorf("noted record: probed %v level %q, want probed %v level %q", rec.Level.LastProbeAt, rec.ObservedLevel, f.now, settled.ObservedLevel)
	}
	c.StartedAt = f.now // restarted by someone: a new process is news
	f.docker.byID[c.ID] = c
	f.now = f.now.Add(time.Second)
	notes = f.records.notes
	mustReconcile(t, f, c.ID)
	if f.records.notes != notes {
		t.Errorf("a probe of a restarted process was only noted; want it written")
	}
}

type fakeArrivals struct{ a dockerwatch.Arrival }

func (f *fakeArrivals) TakeCreated(string) (dockerwatch.Arrival, bool) {
	return f.a, !f.a.EventAt.IsZero()
}

func TestReconcileMeasuresEventToBundleForANewContainer(t *testing.T) {
	t.Parallel()
	c := newContainer()
	f := newFixture(t, c)
	event := time.Now().Add(-30 * time.Millisecond)
	f.r.Arrivals = &fakeArrivals{a: dockerwatch.Arrival{EventAt: event, ReceivedAt: event.Add(10 * time.Millisecond)}}
	mustReconcile(t, f, c.ID)
	rec, _, _ := f.records.Get(c.ID)
	b := rec.Bundle
	if b.EventToBundle < 30*time.Millisecond || b.ReceivedToBundle < 20*time.Millisecond || b.EventToBundle-b.ReceivedToBundle != 10*time.Millisecond {
		t.Errorf("got event->bundle %s and receipt->bundle %s, want at least 30ms and 20ms, 10ms apart", b.EventToBundle, b.ReceivedToBundle)
	}
}
