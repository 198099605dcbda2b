//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
)

// stormSpec is what every container of one storm shares.
type stormSpec struct {
	image, project, certsRoot string
	networks                  []string
	labels                    map[string]string // the harness's, for cleanup
	n                         int
	idle                      int // containers of the idle phase before the storm
}

// stormConcurrency is how many create (then start) calls are in flight.
const stormConcurrency = 8

// stormContainer is one container of the storm and when the engine
// answered for it.
type stormContainer struct {
	id, service      string
	created, started time.Time // when ContainerCreate and ContainerStart returned
}

// stormMade collects what a storm created, so it is removed even when the
// storm fails halfway.
type stormMade struct {
	mu sync.Mutex
	cs []stormContainer
}

func (m *stormMade) add(c stormContainer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cs = append(m.cs, c)
}

// started notes when the i-th container created was started.
func (m *stormMade) started(i int, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cs[i].started = at
}

func (m *stormMade) all() []stormContainer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]stormContainer(nil), m.cs...)
}

func (m *stormMade) services() []string {
	var out []string
	for _, c := range m.all() {
		out = append(out, c.service)
	}
	return out
}

func (m *stormMade) ids() []string {
	var out []string
	for _, c := range m.all() {
		out = append(out, c.id)
	}
	return out
}

// createStorm creates spec.n containers, then starts them, each phase
// stormConcurrency at a time, as `docker compose up` does: every container
// of the project is created before any is started, which is what gives the
// controller the chance to issue a bundle before the process first looks
// for it. Each container is its own compose service, so each gets its own
// bundle.
func createStorm(ctx context.Context, h *Harness, spec stormSpec, made *stormMade) error {
	err := inParallel(ctx, spec.n, func(i int) error {
		return createOne(ctx, h, spec, fmt.Sprintf("s%04d", i), i, made)
	})
	if err != nil {
		return err
	}
	cs := made.all()
	err = inParallel(ctx, len(cs), func(i int) error {
		cctx, cancel := context.WithTimeout(ctx, dockerCall)
		defer cancel()
		if err := h.Docker.ContainerStart(cctx, cs[i].id, container.StartOptions{}); err != nil {
			return fmt.Errorf("starting %s: %w", cs[i].service, err)
		}
		made.started(i, time.Now())
		return nil
	})
	return err
}

// inParallel runs do(0..n-1), stormConcurrency at a time, and stops handing
// out work at the first error.
func inParallel(ctx context.Context, n int, do func(i int) error) error {
	next := make(chan int)
	errs := make(chan error, stormConcurrency)
	var wg sync.WaitGroup
	for range stormConcurrency {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

// createOne creates the container of one compose service, on the network
// that holds the run's slot-th container.
func createOne(ctx context.Context, h *Harness, spec stormSpec, service string, slot int, made *stormMade) error {
	name := spec.project + "-" + service + "-1"
	labels := maps.Clone(spec.labels)
	labels[LabelComposeProject] = spec.project
	labels[LabelComposeService] = service
	labels["com.docker.compose.container-number"] = "1"
	labels["com.docker.compose.oneoff"] = "False"
	cfg := &container.Config{Image: spec.image, Labels: labels,
		// The service waits for its bundle, then serves mTLS: the
		// controller's probes see what a healthy stack serves.
		Env: []string{"SERVICE_NAME=" + service, "RELOAD=off", "CERTS_WAIT=2m"}}
	hostCfg := &container.HostConfig{Mounts: []mount.Mount{
		{Type: mount.TypeBind, Source: spec.certsRoot, Target: "/certs", ReadOnly: true}}}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		spec.networks[slot/maxPerNetwork]: {Aliases: []string{service}}}}
	cctx, cancel := context.WithTimeout(ctx, dockerCall)
	defer cancel()
	resp, err := h.Docker.ContainerCreate(cctx, cfg, hostCfg, netCfg, nil, name)
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	made.add(stormContainer{id: resp.ID, service: service, created: time.Now()})
	return nil
}

// measureIdle creates spec.idle containers one at a time, each only once the
// previous one's bundle has landed and idlePause has passed, so every create
// finds the controller idle. The containers are never started: a create is
// what the controller issues on. They are removed at the end and the
// controller left to settle, so the storm and the restarts that follow see
// the same engine and the same N as without this phase.
func measureIdle(ctx context.Context, t *testing.T, h *Harness, ctl *hostController, made *stormMade, spec stormSpec) idleFigures {
	t.Helper()
	if spec.idle == 0 {
		return idleFigures{}
	}
	watch, err := watchBundles(ctl.certsRoot)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.close()
	creates := recordCreates(h.Docker, spec.project, time.Now().Add(-time.Second))
	defer creates.close()
	settle(ctl)
	for i := range spec.idle {
		if err := createIdle(ctx, h, spec, i, made, watch); err != nil {
			t.Fatal(err)
		}
		time.Sleep(idlePause) // pacing, not a wait for a condition
	}
	var all stormFigures
	awaitFigures(ctx, t, watch, creates, made, &all)
	f := idleFigures{createToBundle: all.createToBundle, eventToBundle: all.eventToBundle,
		histogram: readEventToBundle(ctl)}
	made.remove(t, h)
	settle(ctl)
	return f
}

// idlePause follows each idle container's bundle, so the controller has
// finished what that container gave it before the next create.
const idlePause = 300 * time.Millisecond

// settle waits until the controller has been quiet for a while (see
// quietAfter), at most stormSettle.
func settle(ctl *hostController) {
	now := time.Since(ctl.started)
	waitQuiet(ctl, now, now+stormSettle)
}

// createIdle creates the i-th container of the idle phase, as its own
// service (idle000, …) on the slots after the storm's, and waits for its
// bundle.
func createIdle(ctx context.Context, h *Harness, spec stormSpec, i int, made *stormMade, watch *bundleWatch) error {
	service := fmt.Sprintf("idle%03d", i)
	if err := createOne(ctx, h, spec, service, spec.n+i, made); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, idleBundleWait)
	defer cancel()
	if _, err := watch.waitAll(wctx, []string{service}); err != nil {
		return fmt.Errorf("bundle of %s: %w", service, err)
	}
	return nil
}

// idleBundleWait bounds the wait for one idle container's bundle, which an
// idle controller writes in milliseconds.
const idleBundleWait = 30 * time.Second

// take returns the containers made so far and forgets them, so each is
// removed once however many times remove runs.
func (m *stormMade) take() []stormContainer {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := m.cs
	m.cs = nil
	return cs
}

// remove stops the storm's containers and then removes them,
// stormConcurrency at a time; the test scope's sweep, which removes one at
// a time, then finds nothing left.
func (m *stormMade) remove(t *testing.T, h *Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	cs := m.take()
	if len(cs) == 0 {
		return
	}
	var mu sync.Mutex
	var errs []error
	_ = inParallel(ctx, len(cs), func(i int) error {
		// Stopped first, so the engine releases each endpoint on its own
		// before removing: forced removals of a running storm have left an
		// endpoint count behind here (moby#42119), and with it a network
		// that cannot be removed.
		stop := 2
		_ = h.Docker.ContainerStop(ctx, cs[i].id, container.StopOptions{Timeout: &stop})
		err := h.Docker.ContainerRemove(ctx, cs[i].id, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) {
			mu.Lock()
			errs = append(errs, fmt.Errorf("removing %s: %w", cs[i].id[:12], err))
			mu.Unlock()
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Errorf("storm cleanup: %v", err)
	}
	t.Logf("removed %d containers in %s", len(cs), time.Since(start).Round(time.Second))
}

// newStormNetworks creates the bridge networks every storm of the run
// shares, enough for n containers, and removes them when the test ends.
// One set per run rather than per storm: see removeStormNetwork.
func newStormNetworks(t *testing.T, h *Harness, n int) []string {
	t.Helper()
	labels := h.labels(t, "network")
	// The scope's sweep would fail the run on a network the engine cannot
	// remove; removeStormNetwork reports that instead, and the next run's
	// leftover sweep tries again.
	delete(labels, LabelScope)
	var names []string
	for range (n + maxPerNetwork - 1) / maxPerNetwork {
		name := h.nextName(t, "net")
		ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
		_, err := h.Docker.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: labels})
		cancel()
		if err != nil {
			t.Fatalf("creating network %s: %v", name, err)
		}
		names = append(names, name)
		t.Cleanup(func() { removeStormNetwork(t, h, name) })
	}
	return names
}

// removeStormNetwork removes a network once the engine has let go of its
// endpoints. An engine that still counts endpoints on a network with no
// containers (moby#42119: the count leaks under concurrent removals) keeps
// it until it restarts; that is logged, not failed, since the figures are
// already taken.
func removeStormNetwork(t *testing.T, h *Harness, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		ins, err := h.Docker.NetworkInspect(ctx, name, network.InspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return
		}
		if err == nil && len(ins.Containers) == 0 {
			err = h.Docker.NetworkRemove(ctx, ins.ID)
			if err == nil || cerrdefs.IsNotFound(err) {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Logf("network %s was left behind: %v (an endpoint count the engine leaked; it goes when dockerd restarts)", name, err)
			return
		case <-time.After(time.Second):
		}
	}
}
