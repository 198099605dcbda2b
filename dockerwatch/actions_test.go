package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// restartFake answers ContainerRestart and ContainerKill only.
type restartFake struct {
	ActionsAPI
	restarts []container.StopOptions
	kills    []string
	err      error
}

func (f *restartFake) ContainerRestart(_ context.Context, _ string, opts container.StopOptions) error {
	f.restarts = append(f.restarts, opts)
	return f.err
}

func (f *restartFake) ContainerKill(_ context.Context, _, signal string) error {
	f.kills = append(f.kills, signal)
	return f.err
}

func TestRestartTimeout(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		timeout time.Duration
		want    *int // seconds sent to the engine; nil = the container's default
	}{
		"should send whole seconds as they are":                   {timeout: 10 * time.Second, want: ptr(10)},
		"should round a fraction up so the grace period is kept":  {timeout: 1500 * time.Millisecond, want: ptr(2)},
		"should send zero for an immediate kill":                  {timeout: 0, want: ptr(0)},
		"should leave the timeout to the container when negative": {timeout: -1, want: nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := &restartFake{}
			if err := restart(context.Background(), f, rcOldID, tc.timeout); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if len(f.restarts) != 1 || !reflect.DeepEqual(f.restarts[0].Timeout, tc.want) {
				t.Errorf("got restarts %+v, want one with timeout %v", f.restarts, tc.want)
			}
		})
	}
}

func TestActionsWrapNotFound(t *testing.T) {
	t.Parallel()
	engineErr := fmt.Errorf("no such container: %w", cerrdefs.ErrNotFound)
	for name, act := range map[string]func(ActionsAPI) error{
		"should report a restarted container that is gone as not found": func(api ActionsAPI) error {
			return restart(context.Background(), api, "web", time.Second)
		},
		"should report a signalled container that is gone as not found": func(api ActionsAPI) error {
			return sendSignal(context.Background(), api, "web", "SIGHUP")
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			err := act(&restartFake{err: engineErr})
			if !errors.Is(err, ErrNotFound) || !cerrdefs.IsNotFound(err) {
				t.Errorf("got error %v, want one satisfying both ErrNotFound and errdefs.IsNotFound", err)
			}
		})
	}
}

func TestSignal(t *testing.T) {
	t.Parallel()
	f := &restartFake{}
	if err := sendSignal(context.Background(), f, rcOldID, "SIGHUP"); err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if err := sendSignal(context.Background(), f, rcOldID, ""); !errors.Is(err, errEmptySignal) {
		t.Errorf("got error %v for an empty signal, want %v", err, errEmptySignal)
	}
	if want := []string{"SIGHUP"}; !reflect.DeepEqual(f.kills, want) {
		t.Errorf("got kills %q, want %q: an empty signal must never reach the engine", f.kills, want)
	}
}

func TestRecreateRefusesBeforeTouchingAnything(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		old      container.InspectResponse
		add      map[string]string
		imageErr error
		inspErr  error
		// want: the error wraps it; the only calls are inspect (and image).
		want error
	}{
		"should refuse an auto-remove container, which stopping would delete with its volumes": {
			old:  oldFixture(withHost(func(hc *container.HostConfig) { hc.AutoRemove = true })),
			want: errNotRecreatable,
		},
		"should refuse a container that is being removed": {
			old:  oldFixture(func(r *container.InspectResponse) { r.State = &container.State{Status: "removing"} }),
			want: errNotRecreatable,
		},
		"should refuse a dead container": {
			old:  oldFixture(func(r *container.InspectResponse) { r.State = &container.State{Status: "dead", Dead: true} }),
			want: errNotRecreatable,
		},
		"should refuse to touch compose labels": {
			old: oldFixture(), add: map[string]string{"com.docker.compose.config-hash": "x"}, want: errNotRecreatable,
		},
		"should refuse an inspect response without HostConfig": {
			old: oldFixture(func(r *container.InspectResponse) { r.HostConfig = nil }), want: errNotRecreatable,
		},
		"should stop when the image cannot be inspected": {
			old: oldFixture(), imageErr: errBoom, want: errBoom,
		},
		"should report a container that is gone as not found": {
			inspErr: fmt.Errorf("no such container: %w", cerrdefs.ErrNotFound), want: ErrNotFound,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDocker(tc.old)
			f.imageErr = tc.imageErr
			if tc.inspErr != nil {
				f.fail["inspect old"] = tc.inspErr
			}
			_, err := recreate(context.Background(), f, rcOldID, tc.add, nil, time.Second)
			if !errors.Is(err, tc.want) {
				t.Errorf("got error %v, want one wrapping %v", err, tc.want)
			}
			for _, c := range f.log() {
				if c != "inspect old" && c != "image app:1.2" {
					t.Errorf("got call %q, want nothing changed", c)
				}
			}
		})
	}
}

func TestRecreatePinsTheImageTheOldContainerRuns(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		images map[string]string // what the image reference resolves to now
		// want is Config.Image of the new container.
		want string
	}{
		"should keep the reference when it still names the old image":   {images: map[string]string{"app:1.2": "sha256:1111"}, want: "app:1.2"},
		"should create from the old image ID when the tag has moved on": {images: map[string]string{"app:1.2": "sha256:2222"}, want: "sha256:1111"},
		"should create from the old image ID when the tag is gone":      {images: map[string]string{}, want: "sha256:1111"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDocker(oldFixture())
			f.imageIDs = tc.images
			if _, err := recreate(context.Background(), f, rcOldID, nil, nil, time.Second); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if got := f.created[0].config.Image; got != tc.want {
				t.Errorf("got image %q, want %q", got, tc.want)
			}
		})
	}
}
