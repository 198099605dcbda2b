package dockerwatch

import (
	"context"
	"errors"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	dockerspec "github.com/moby/docker-image-spec/specs-go/v1"
)

func TestInterventions(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	started := t0.Add(-time.Hour)
	tests := map[string]struct {
		// run notes events (and own actions) against iv; clock is at t0.
		run func(iv *Interventions, clock *time.Time)
		// wantStop: whether StoppedByOther(id, started) reports a stop.
		wantStop bool
		// wantAction is the reported stop's action when wantStop.
		wantAction string
	}{
		"should report a docker stop's SIGTERM kill as someone else's stop": {
			run:      func(iv *Interventions, _ *time.Time) { iv.Note("c1", "kill", "15", t0) },
			wantStop: true, wantAction: "kill",
		},
		"should report a stop and a destroy": {
			run: func(iv *Interventions, _ *time.Time) {
				iv.Note("c1", "stop", "", t0)
				iv.Note("c1", "destroy", "", t0.Add(time.Second))
			},
			wantStop: true, wantAction: "destroy",
		},
		"should not count a reload signal as a stop": {
			run:      func(iv *Interventions, _ *time.Time) { iv.Note("c1", "kill", "1", t0) },
			wantStop: false,
		},
		"should not count die, start or health events": {
			run: func(iv *Interventions, _ *time.Time) {
				for _, a := range []string{"die", "start", "health_status: unhealthy"} {
					iv.Note("c1", a, "", t0)
				}
			},
			wantStop: false,
		},
		"should not count the controller's own restart, in flight or just after": {
			run: func(iv *Interventions, clock *time.Time) {
				end := iv.Begin("c1")
				iv.Note("c1", "kill", "15", t0)
				end()
				iv.Note("c1", "stop", "", t0.Add(ownGrace-time.Second))
			},
			wantStop: false,
		},
		"should count a stop that comes after the controller's own action window": {
			run: func(iv *Interventions, clock *time.Time) {
				iv.Begin("c1")()
				iv.Note("c1", "kill", "15", t0.Add(ownGrace+time.Second))
			},
			wantStop: true, wantAction: "kill",
		},
		"should forget a stop once the process has started again after it": {
			run:      func(iv *Interventions, _ *time.Time) { iv.Note("c1", "kill", "15", started.Add(-time.Minute)) },
			wantStop: false,
		},
		"should keep stops of one container apart from another's": {
			run:      func(iv *Interventions, _ *time.Time) { iv.Note("other", "kill", "15", t0) },
			wantStop: false,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			clock := t0
			iv := NewInterventions(func() time.Time { return clock })
			tc.run(iv, &clock)
			got, ok := iv.StoppedByOther("c1", started)
			if ok != tc.wantStop {
				t.Fatalf("StoppedByOther: got %v (%+v), want %v", ok, got, tc.wantStop)
			}
			if ok && got.Action != tc.wantAction {
				t.Errorf("StoppedByOther action: got %q, want %q", got.Action, tc.wantAction)
			}
		})
	}
}

func TestInterventionsArePrunedAfterTheirTTL(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	iv := NewInterventions(func() time.Time { return t0 })
	iv.Note("old", "kill", "15", t0)
	iv.Note("new", "start", "", t0.Add(interventionTTL+2*time.Minute))
	if _, ok := iv.StoppedByOther("old", time.Time{}); ok {
		t.Error("a stop older than the TTL: got remembered, want pruned")
	}
	if got := iv.LastEventAt("new"); !got.Equal(t0.Add(interventionTTL + 2*time.Minute)) {
		t.Errorf("LastEventAt(new): got %v, want the start event's time", got)
	}
}

func TestWatcherNotesKillEventsBeforeQueueing(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{}
	iv := NewInterventions(nil)
	h := startWatcher(t, api, func(o *WatcherOptions, _ *Watcher) { o.Interventions = iv })
	waitFor(t, "ready", h.w.Ready)
	at := time.Now()
	api.stream(t, 1).send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionKill,
		Actor: events.Actor{ID: "svc", Attributes: map[string]string{"signal": "15"}}, TimeNano: at.UnixNano()})
	waitFor(t, "kill enqueued", func() bool { return h.q.count("svc") == 1 })
	if s, ok := iv.StoppedByOther("svc", at.Add(-time.Second)); !ok || s.Signal != "15" {
		t.Fatalf("after a kill event: got %+v, %v; want a stop with signal 15", s, ok)
	}
	for _, want := range []string{"kill", "stop"} {
		if got := eventFilters().Get("event"); !contains(got, want) {
			t.Errorf("event filter: got %v, want it to include %q", got, want)
		}
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// fakeImages counts image inspects and answers from a table.
type fakeImages struct {
	ImageAPI
	labels map[string]map[string]string
	err    error
	calls  int
}

func (f *fakeImages) ImageInspect(_ context.Context, id string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	f.calls++
	if f.err != nil {
		return image.InspectResponse{}, f.err
	}
	l, ok := f.labels[id]
	if !ok {
		return image.InspectResponse{}, cerrdefs.ErrNotFound
	}
	cfg := &dockerspec.DockerOCIImageConfig{}
	cfg.Labels = l
	return image.InspectResponse{ID: id, Config: cfg}, nil
}

func TestImageLabelsAreCachedPerImageID(t *testing.T) {
	t.Parallel()
	api := &fakeImages{labels: map[string]map[string]string{"sha256:a": {"crank.security.service": "platform"}}}
	l := imageLabels{api: api}
	for range 3 {
		got, err := l.labelsOf(context.Background(), "sha256:a")
		if err != nil || got["crank.security.service"] != "platform" {
			t.Fatalf("labelsOf: got %v, %v; want the image's label", got, err)
		}
	}
	if api.calls != 1 {
		t.Errorf("image inspects for 3 lookups of one image: got %d, want 1", api.calls)
	}
	if got, err := l.labelsOf(context.Background(), "sha256:gone"); got != nil || err != nil {
		t.Errorf("a removed image: got %v, %v; want no labels and no error", got, err)
	}
	api.err = errors.New("daemon busy")
	if _, err := l.labelsOf(context.Background(), "sha256:other"); err == nil {
		t.Error("a failing image inspect: got nil error, want it returned")
	}
}

func TestInterventionsMeasureACreateOnce(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	iv := NewInterventions(func() time.Time { return t0.Add(3 * time.Millisecond) })
	iv.Note("c1", "create", "", t0)
	a, ok := iv.TakeCreated("c1")
	if !ok || !a.EventAt.Equal(t0) || !a.ReceivedAt.Equal(t0.Add(3*time.Millisecond)) {
		t.Fatalf("TakeCreated: got %+v, %v; want the event's time and the receipt 3ms later", a, ok)
	}
	if _, ok := iv.TakeCreated("c1"); ok {
		t.Error("TakeCreated a second time: got an arrival, want it forgotten")
	}
}
