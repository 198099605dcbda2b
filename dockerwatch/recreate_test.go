package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// fakeDocker is a hand-written ActionsAPI recording every call as a short
// line ("stop old", "rename old app-web-1", ...) with the old and new
// container IDs written as "old" and "new". It has no VolumeRemove at all:
// ActionsAPI does not offer one, which is the strongest guarantee that
// Recreate never removes a volume; each ContainerRemove's options are
// recorded too, to prove RemoveVolumes is never asked for.
type fakeDocker struct {
	ActionsAPI

	mu      sync.Mutex
	calls   []string
	removes []container.RemoveOptions
	stops   []container.StopOptions
	created []fakeCreate

	inspect   container.InspectResponse
	imageIDs  map[string]string // ref -> image ID; missing = not found
	imageErr  error
	fail      map[string]error // call line -> error to return
	createdID string           // ID ContainerCreate returns even on failure
	// onCall, if set, runs before each call is answered.
	onCall func(line string)
}

type fakeCreate struct {
	config     *container.Config
	hostConfig *container.HostConfig
	networking *network.NetworkingConfig
	name       string
}

func newFakeDocker(old container.InspectResponse) *fakeDocker {
	return &fakeDocker{inspect: old, imageIDs: map[string]string{"app:1.2": "sha256:1111"}, fail: map[string]error{}, createdID: rcNewID}
}

func (f *fakeDocker) record(ctx context.Context, format string, args ...any) error {
	line := fmt.Sprintf(format, args...)
	line = strings.NewReplacer(rcOldID, "old", rcNewID, "new").Replace(line)
	f.mu.Lock()
	f.calls = append(f.calls, line)
	hook, err := f.onCall, f.fail[line]
	f.mu.Unlock()
	if hook != nil {
		hook(line)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func (f *fakeDocker) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeDocker) ContainerInspect(ctx context.Context, id string) (container.InspectResponse, error) {
	if err := f.record(ctx, "inspect %s", id); err != nil {
		return container.InspectResponse{}, err
	}
	return f.inspect, nil
}

func (f *fakeDocker) ImageInspect(ctx context.Context, ref string, _ ...client.ImageInspectOption) (image.InspectResponse, error) {
	if err := f.record(ctx, "image %s", ref); err != nil {
		return image.InspectResponse{}, err
	}
	if f.imageErr != nil {
		return image.InspectResponse{}, f.imageErr
	}
	id, ok := f.imageIDs[ref]
	if !ok {
		return image.InspectResponse{}, cerrdefs.ErrNotFound
	}
	return image.InspectResponse{ID: id}, nil
}

func (f *fakeDocker) ContainerStop(ctx context.Context, id string, opts container.StopOptions) error {
	f.mu.Lock()
	f.stops = append(f.stops, opts)
	f.mu.Unlock()
	return f.record(ctx, "stop %s", id)
}

func (f *fakeDocker) ContainerRename(ctx context.Context, id, name string) error {
	return f.record(ctx, "rename %s %s", id, name)
}

func (f *fakeDocker) ContainerCreate(ctx context.Context, cfg *container.Config, hc *container.HostConfig, nc *network.NetworkingConfig, _ *ocispec.Platform, name string) (container.CreateResponse, error) {
	f.mu.Lock()
	f.created = append(f.created, fakeCreate{cfg, hc, nc, name})
	f.mu.Unlock()
	err := f.record(ctx, "create %s", name)
	return container.CreateResponse{ID: f.createdID}, err
}

func (f *fakeDocker) NetworkConnect(ctx context.Context, net, id string, _ *network.EndpointSettings) error {
	return f.record(ctx, "connect %s %s", net, id)
}

func (f *fakeDocker) ContainerStart(ctx context.Context, id string, _ container.StartOptions) error {
	return f.record(ctx, "start %s", id)
}

func (f *fakeDocker) ContainerRemove(ctx context.Context, id string, opts container.RemoveOptions) error {
	f.mu.Lock()
	f.removes = append(f.removes, opts)
	f.mu.Unlock()
	return f.record(ctx, "remove %s", id)
}

const rcTmpName = "app-web-1-crank-old-" + rcShort

var errBoom = errors.New("boom")

// twoNetworks is the fixture on app_default (NetworkMode) and backend.
func twoNetworks() container.InspectResponse {
	return oldFixture(withNetwork("backend", &network.EndpointSettings{NetworkID: "n2", Aliases: []string{"api"}}))
}

func TestRecreateSucceeds(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		old container.InspectResponse
		// want is the exact call sequence.
		want []string
	}{
		"should stop, rename, create, connect, start and remove the old container when it was running": {
			old: twoNetworks(),
			want: []string{"inspect old", "image app:1.2", "stop old", "rename old " + rcTmpName, "create app-web-1",
				"connect backend new", "start new", "remove old"},
		},
		"should neither stop nor start when the old container was not running": {
			old: oldFixture(func(r *container.InspectResponse) { r.State = &container.State{Status: "exited"} }),
			want: []string{"inspect old", "image app:1.2", "rename old " + rcTmpName, "create app-web-1",
				"remove old"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDocker(tc.old)
			newID, err := recreate(context.Background(), f, rcOldID, map[string]string{"crank.security.observed": "tls"}, nil, 1500*time.Millisecond)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if newID != rcNewID {
				t.Errorf("got new ID %q, want %q", newID, rcNewID)
			}
			if got := f.log(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got calls\n%q\nwant\n%q", got, tc.want)
			}
			assertNoVolumeRemoval(t, f)
			if len(f.stops) > 0 && (f.stops[0].Timeout == nil || *f.stops[0].Timeout != 2) {
				t.Errorf("got stop options %+v, want a timeout of 2s (1.5s rounded up)", f.stops[0])
			}
			if got := f.created[0].config.Labels["crank.security.observed"]; got != "tls" {
				t.Errorf("got label %q, want %q", got, "tls")
			}
		})
	}
}

func assertNoVolumeRemoval(t *testing.T, f *fakeDocker) {
	t.Helper()
	for _, o := range f.removes {
		if o.RemoveVolumes {
			t.Errorf("got a ContainerRemove with RemoveVolumes, want volumes never removed")
		}
	}
}

func TestRecreateRollsBack(t *testing.T) {
	t.Parallel()
	rename := "rename old " + rcTmpName
	for name, tc := range map[string]struct {
		old      container.InspectResponse
		failAt   []string // call lines that fail
		noNewID  bool     // create fails without leaving a container (the engine's usual behaviour)
		want     []string // exact call sequence, compensation included
		wantSent error    // ErrRolledBack or ErrRollbackFailed
	}{
		"should start the old container again when stopping it fails": {
			old: twoNetworks(), failAt: []string{"stop old"},
			// The failed stop is finished (uncancelled) before the start.
			want:     []string{"inspect old", "image app:1.2", "stop old", "stop old", "start old"},
			wantSent: ErrRolledBack,
		},
		"should start the old container again when renaming it fails": {
			old: twoNetworks(), failAt: []string{rename},
			want:     []string{"inspect old", "image app:1.2", "stop old", rename, "start old"},
			wantSent: ErrRolledBack,
		},
		"should rename back and restart the old container when create fails": {
			old: twoNetworks(), failAt: []string{"create app-web-1"}, noNewID: true,
			want:     []string{"inspect old", "image app:1.2", "stop old", rename, "create app-web-1", "rename old app-web-1", "start old"},
			wantSent: ErrRolledBack,
		},
		"should remove a half-made container when create fails but returned an ID": {
			old: twoNetworks(), failAt: []string{"create app-web-1"},
			want: []string{"inspect old", "image app:1.2", "stop old", rename, "create app-web-1",
				"remove new", "rename old app-web-1", "start old"},
			wantSent: ErrRolledBack,
		},
		"should remove the new container, rename back and restart the old one when connecting fails": {
			old: twoNetworks(), failAt: []string{"connect backend new"},
			want: []string{"inspect old", "image app:1.2", "stop old", rename, "create app-web-1", "connect backend new",
				"remove new", "rename old app-web-1", "start old"},
			wantSent: ErrRolledBack,
		},
		"should remove the new container, rename back and restart the old one when starting the new one fails": {
			old: twoNetworks(), failAt: []string{"start new"},
			want: []string{"inspect old", "image app:1.2", "stop old", rename, "create app-web-1", "connect backend new", "start new",
				"remove new", "rename old app-web-1", "start old"},
			wantSent: ErrRolledBack,
		},
		"should not start an old container that was not running": {
			old:    oldFixture(withNetwork("backend", nil), func(r *container.InspectResponse) { r.State.Running, r.State.Status = false, "exited" }),
			failAt: []string{"connect backend new"},
			want: []string{"inspect old", "image app:1.2", rename, "create app-web-1", "connect backend new",
				"remove new", "rename old app-web-1"},
			wantSent: ErrRolledBack,
		},
		"should still start the old container and report it when renaming back fails": {
			old: twoNetworks(), failAt: []string{"start new", "rename old app-web-1"},
			want: []string{"inspect old", "image app:1.2", "stop old", rename, "create app-web-1", "connect backend new", "start new",
				"remove new", "rename old app-web-1", "start old"},
			wantSent: ErrRollbackFailed,
		},
		"should try every compensating step when removing the new container fails": {
			old: twoNetworks(), failAt: []string{"start new", "remove new", "rename old app-web-1", "start old"},
			want: []string{"inspect old", "image app:1.2", "stop old", rename, "create app-web-1", "connect backend new", "start new",
				"remove new", "rename old app-web-1", "start old"},
			wantSent: ErrRollbackFailed,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDocker(tc.old)
			for _, line := range tc.failAt {
				f.fail[line] = fmt.Errorf("%s: %w", line, errBoom)
			}
			if tc.noNewID {
				f.createdID = ""
			}
			newID, err := recreate(context.Background(), f, rcOldID, map[string]string{"crank.security.observed": "tls"}, nil, 0)
			if newID != "" {
				t.Errorf("got new ID %q, want none", newID)
			}
			if !errors.Is(err, errBoom) || !errors.Is(err, tc.wantSent) {
				t.Errorf("got error %v, want one wrapping the cause and %v", err, tc.wantSent)
			}
			if err != nil && !strings.Contains(err.Error(), tc.failAt[0]) {
				t.Errorf("got error %q, want it to name the failed step %q", err, tc.failAt[0])
			}
			if got := f.log(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got calls\n%q\nwant\n%q", got, tc.want)
			}
			assertNoVolumeRemoval(t, f)
		})
	}
}

func TestRecreateRollsBackEvenWhenTheCallerGivesUp(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := newFakeDocker(twoNetworks())
	f.onCall = func(line string) {
		if line == "create app-web-1" {
			cancel() // the reconcile is abandoned mid-recreate
		}
	}
	_, err := recreate(ctx, f, rcOldID, nil, nil, 0)
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrRolledBack) {
		t.Errorf("got error %v, want one wrapping context.Canceled and ErrRolledBack", err)
	}
	want := []string{"inspect old", "image app:1.2", "stop old", "rename old " + rcTmpName, "create app-web-1",
		"remove new", "rename old app-web-1", "start old"}
	if got := f.log(); !reflect.DeepEqual(got, want) {
		t.Errorf("got calls\n%q\nwant\n%q", got, want)
	}
}

func TestRecreateReportsAnOldContainerItCouldNotRemove(t *testing.T) {
	t.Parallel()
	f := newFakeDocker(oldFixture())
	f.fail["remove old"] = errBoom
	newID, err := recreate(context.Background(), f, rcOldID, nil, nil, 0)
	if newID != rcNewID {
		t.Errorf("got new ID %q, want %q: the new container is in place", newID, rcNewID)
	}
	if !errors.Is(err, ErrOldContainerLeft) || !errors.Is(err, errBoom) {
		t.Errorf("got error %v, want one wrapping ErrOldContainerLeft and the cause", err)
	}
	if !strings.Contains(fmt.Sprint(err), rcTmpName) {
		t.Errorf("got error %q, want it to name the leftover %q", err, rcTmpName)
	}
	assertNoVolumeRemoval(t, f)
}
