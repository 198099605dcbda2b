package dockerwatch

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
)

// countingEngine serves container c1 and counts its inspects.
func countingEngine(t *testing.T) (*Client, *atomic.Int64) {
	t.Helper()
	var inspects atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		switch path := versionPrefix.ReplaceAllString(r.URL.Path, ""); path {
		case "/_ping":
			_, _ = w.Write([]byte("OK"))
		case "/containers/c1/json":
			inspects.Add(1)
			_ = json.NewEncoder(w).Encode(inspectFixture(func(r *container.InspectResponse) {
				r.ID, r.Config.Labels, r.Config.Env = "c1", map[string]string{"app": "web"}, []string{"SERVICE_NAME=web"}
			}))
		case "/images/sha256:abc/json":
			_, _ = w.Write([]byte(`{"Id":"sha256:abc","Config":{"Labels":{}}}`))
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	return clientOf(t, srv), &inspects
}

func TestKnownAnswersFromTheLastInspectUntilSomethingSaysItChanged(t *testing.T) {
	t.Parallel()
	c, inspects := countingEngine(t)
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	c.Inspections = NewInspections(func() time.Time { return now }, time.Minute)
	ctx := context.Background()
	steps := []struct {
		name   string
		before func()
		asks   bool // the engine is asked
	}{
		{"first look", func() {}, true},
		{"nothing changed", func() {}, false},
		{"an event of the container", func() { c.Inspections.Changed("c1") }, true},
		{"an event of another container", func() { c.Inspections.Changed("c2") }, false},
		{"a reconnect", func() { c.Inspections.ChangedAll() }, true},
		{"just younger than the max age", func() { now = now.Add(time.Minute - time.Nanosecond) }, false},
		{"as old as the max age", func() { now = now.Add(time.Nanosecond) }, true},
	}
	for _, s := range steps {
		s.before()
		before := inspects.Load()
		got, err := c.Known(ctx, "c1")
		if err != nil || got.ID != "c1" {
			t.Fatalf("%s: Known: got %q, %v", s.name, got.ID, err)
		}
		if asked := inspects.Load() > before; asked != s.asks {
			t.Errorf("%s: engine asked %v, want %v", s.name, asked, s.asks)
		}
	}
	before := inspects.Load()
	if _, err := c.Inspect(ctx, "c1"); err != nil || inspects.Load() != before+1 {
		t.Errorf("Inspect: got %v and %d engine calls, want it to always ask the engine", err, inspects.Load()-before)
	}
	got, _ := c.KnownGetter().Inspect(ctx, "c1")
	got.Labels["planted"], got.Env["PLANTED"] = "by a caller", "1"
	again, _ := c.Known(ctx, "c1")
	if _, ok := again.Labels["planted"]; ok {
		t.Errorf("a caller's change to the labels Known returned reached the cache: %v", again.Labels)
	}
	if _, ok := again.Env["PLANTED"]; ok {
		t.Errorf("a caller's change to the env Known returned reached the cache: %v", again.Env)
	}
}

func TestAnInspectBegunBeforeAChangeIsNotRemembered(t *testing.T) {
	t.Parallel()
	s := NewInspections(nil, 0)
	ctr := Container{ID: "c1", Labels: map[string]string{"a": "b"}}
	for name, change := range map[string]func(){
		"the container changed": func() { s.Changed("c1") },
		"everything changed":    s.ChangedAll,
	} {
		mark := s.begin()
		change()
		s.remember("c1", ctr, mark)
		if _, ok := s.lookup("c1"); ok {
			t.Errorf("%s while the inspect was on its way: its reply was remembered", name)
		}
	}
	mark := s.begin()
	s.Changed("c2")
	s.remember("c1", ctr, mark)
	if _, ok := s.lookup("c1"); !ok {
		t.Error("a change of another container kept c1's inspect from being remembered")
	}
	var nothing *Inspections
	nothing.Changed("c1")
	nothing.remember("c1", ctr, nothing.begin())
	if _, ok := nothing.lookup("c1"); ok {
		t.Error("a nil Inspections remembered something")
	}
}

func TestChangeMarksAreBounded(t *testing.T) {
	t.Parallel()
	s := NewInspections(nil, 0)
	mark := s.begin()
	for i := range maxChanged + 1 {
		s.Changed(string(rune('a'+i%26)) + strings.Repeat("x", i/26))
	}
	if len(s.since) > maxChanged {
		t.Errorf("change marks: got %d, want at most %d", len(s.since), maxChanged)
	}
	s.remember("c1", Container{ID: "c1"}, mark)
	if _, ok := s.lookup("c1"); ok {
		t.Error("an inspect begun before the marks were dropped was remembered")
	}
}

func TestWatcherForgetsTheInspectsOfWhatChanged(t *testing.T) {
	t.Parallel()
	api := &fakeAPI{containers: summaries("c1")}
	seen := NewInspections(nil, 0)
	h := startWatcher(t, api, withOptions(func(o *WatcherOptions) { o.Inspections = seen }))
	waitFor(t, "ready", h.w.Ready)
	for _, id := range []string{"c7", "c8"} {
		seen.remember(id, Container{ID: id}, seen.begin())
	}
	s := api.stream(t, 1)
	// A network connected to c7: forgotten, not queued (a start brings one).
	s.send(t, events.Message{Type: events.NetworkEventType, Action: events.ActionConnect,
		Actor: events.Actor{ID: "net1", Attributes: map[string]string{"container": "c7"}}})
	s.send(t, events.Message{Type: events.NetworkEventType, Action: events.ActionCreate, Actor: events.Actor{ID: "net2"}})
	// c8 started: forgotten and queued. Events arrive in order, so once c8
	// is queued the connect before it was handled.
	s.send(t, events.Message{Type: events.ContainerEventType, Action: events.ActionStart, Actor: events.Actor{ID: "c8"}})
	waitFor(t, "the started container queued", func() bool { return h.q.count("c8") == 1 })
	for _, id := range []string{"c7", "c8"} {
		if _, ok := seen.lookup(id); ok {
			t.Errorf("%s's inspect is still remembered after its event", id)
		}
	}
	if got := h.q.count("c7") + h.q.count(""); got != 0 {
		t.Errorf("network events queued %d keys, want none", got)
	}
	f := eventFilters()
	for _, want := range []string{"network", "container"} {
		if !f.ExactMatch("type", want) {
			t.Errorf("event filters %v: want type %s", f, want)
		}
	}
	for _, want := range []events.Action{events.ActionConnect, events.ActionDisconnect, events.ActionRename, events.ActionUpdate, events.ActionStart} {
		if !f.ExactMatch("event", string(want)) {
			t.Errorf("event filters: want event %s", want)
		}
	}
}
