//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/swarm"
)

// A single-node swarm for one test. swarm init changes the engine's global
// state (an ingress network, the docker_gwbridge bridge, a Raft store), so
// the harness:
//   - refuses to touch a swarm it did not make: an active swarm without its
//     labels, or one a live run made, skips the test;
//   - recovers a swarm a dead run left (its labels name the run's process);
//   - leaves the engine as it found it, on success and failure alike:
//     services, secrets, configs and networks removed, swarm left (force),
//     and docker_gwbridge removed if init created it.

// SwarmSubnet is the overlay's subnet: chosen, only on this machine.
const SwarmSubnet = "10.251.0.0/24"

// gwbridge is the bridge swarm init creates and swarm leave leaves behind.
const gwbridge = "docker_gwbridge"

// Swarm is the test's swarm.
type Swarm struct {
	h       *Harness
	Network string // the attachable overlay every service joins
}

// InitSwarm makes the engine a single-node swarm manager for t, on the
// loopback address, and an attachable overlay network with SwarmSubnet.
// It must not run in parallel with other tests.
func (h *Harness) InitSwarm(t testing.TB) *Swarm {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.recoverSwarm(ctx, t); err != nil {
		t.Fatalf("recovering a swarm a dead run left: %v", err)
	}
	_, err := h.Docker.NetworkInspect(ctx, gwbridge, network.InspectOptions{})
	gwBefore := err == nil
	s := &Swarm{h: h}
	labels := h.labels(t, "swarm")
	if _, err := h.Docker.SwarmInit(ctx, swarm.InitRequest{
		ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1",
		Spec: swarm.Spec{Annotations: swarm.Annotations{Labels: labels}},
	}); err != nil {
		t.Fatalf("swarm init: %v", err)
	}
	t.Cleanup(func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer ccancel()
		if err := h.teardownSwarm(cctx, !gwBefore); err != nil {
			t.Errorf("leaving the engine as found: %v", err)
		}
	})
	s.Network = h.nextName(t, "overlay")
	_, err = h.Docker.NetworkCreate(ctx, s.Network, network.CreateOptions{
		Driver: "overlay", Attachable: true, Scope: "swarm", Labels: h.labels(t, "network"),
		IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: SwarmSubnet}}},
	})
	if err != nil {
		t.Fatalf("creating overlay %s: %v", s.Network, err)
	}
	return s
}

// recoverSwarm leaves a swarm that a dead run of this harness made; an
// active swarm that is anyone else's skips the test, untouched.
func (h *Harness) recoverSwarm(ctx context.Context, t testing.TB) error {
	info, err := h.Docker.Info(ctx)
	if err != nil {
		return err
	}
	switch info.Swarm.LocalNodeState {
	case swarm.LocalNodeStateInactive:
		return nil
	case swarm.LocalNodeStateActive:
	default:
		t.Skipf("the engine's swarm state is %q: leaving it alone", info.Swarm.LocalNodeState)
	}
	if !info.Swarm.ControlAvailable {
		t.Skip("the engine is a worker in someone's swarm: leaving it alone")
	}
	sw, err := h.Docker.SwarmInspect(ctx)
	if err != nil {
		return err
	}
	if sw.Spec.Labels[LabelE2E] != "1" || !h.stale(sw.Spec.Labels) {
		t.Skipf("the engine is already in a swarm this harness did not make, or a live run's (labels %v): leaving it alone", sw.Spec.Labels)
	}
	fmt.Fprintf(os.Stderr, "e2e: leaving the swarm of dead run %s\n", sw.Spec.Labels[LabelRun])
	_, err = h.Docker.NetworkInspect(ctx, gwbridge, network.InspectOptions{})
	return h.teardownSwarm(ctx, err == nil)
}

// teardownSwarm removes every service, secret, config and overlay network
// of the swarm (it is the harness's own), leaves it, and removes the
// gwbridge when removeGW (init created it).
func (h *Harness) teardownSwarm(ctx context.Context, removeGW bool) error {
	errs := []error{h.removeServices(ctx)}
	secrets, err := h.Docker.SecretList(ctx, swarm.SecretListOptions{})
	errs = append(errs, err)
	for _, s := range secrets {
		errs = append(errs, ignoreNotFound(h.Docker.SecretRemove(ctx, s.ID)))
	}
	configs, err := h.Docker.ConfigList(ctx, swarm.ConfigListOptions{})
	errs = append(errs, err)
	for _, c := range configs {
		errs = append(errs, ignoreNotFound(h.Docker.ConfigRemove(ctx, c.ID)))
	}
	nets, err := h.Docker.NetworkList(ctx, network.ListOptions{Filters: filters.NewArgs(filters.Arg("driver", "overlay"))})
	errs = append(errs, err)
	for _, n := range nets {
		if !n.Ingress {
			errs = append(errs, ignoreNotFound(h.Docker.NetworkRemove(ctx, n.ID)))
		}
	}
	errs = append(errs, h.Docker.SwarmLeave(ctx, true))
	if removeGW {
		errs = append(errs, h.removeGWBridge(ctx))
	}
	return errors.Join(errs...)
}

// removeServices removes every service and waits until their task
// containers are gone, so their networks and volumes can go too.
func (h *Harness) removeServices(ctx context.Context) error {
	svcs, err := h.Docker.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range svcs {
		errs = append(errs, ignoreNotFound(h.Docker.ServiceRemove(ctx, s.ID)))
	}
	f := filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id"))
	for ctx.Err() == nil {
		cs, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil || len(cs) == 0 {
			return errors.Join(append(errs, err)...)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return errors.Join(append(errs, fmt.Errorf("task containers still there: %w", ctx.Err()))...)
}

// removeGWBridge removes docker_gwbridge once nothing is attached to it.
func (h *Harness) removeGWBridge(ctx context.Context) error {
	for ctx.Err() == nil {
		err := h.Docker.NetworkRemove(ctx, gwbridge)
		if err == nil || cerrdefs.IsNotFound(err) {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("removing %s: %w", gwbridge, ctx.Err())
}

func ignoreNotFound(err error) error {
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}

// SwarmService describes a service for CreateService.
type SwarmService struct {
	Name     string            // full service name
	Image    string            // image ID
	Env      []string          // KEY=value
	Labels   map[string]string // service labels (deploy.labels)
	Replicas uint64
	Aliases  []string // on the overlay
	Health   []string // healthcheck test; nil: none
	Spec     func(*swarm.ServiceSpec)
}

// CreateService creates a service on the test's overlay and returns its ID.
func (s *Swarm) CreateService(t testing.TB, o SwarmService) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	labels := s.h.labels(t, "service")
	maps.Copy(labels, o.Labels)
	replicas := o.Replicas
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: o.Name, Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: o.Image, Env: o.Env, Labels: s.h.labels(t, "service"),
				StopGracePeriod: ptr(5 * time.Second)},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: s.Network, Aliases: o.Aliases}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: ptr(500 * time.Millisecond)},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}
	if o.Health != nil {
		spec.TaskTemplate.ContainerSpec.Healthcheck = &container.HealthConfig{Test: o.Health,
			Interval: 500 * time.Millisecond, Timeout: 2 * time.Second, Retries: 3, StartPeriod: 5 * time.Second}
	}
	if o.Spec != nil {
		o.Spec(&spec)
	}
	resp, err := s.h.Docker.ServiceCreate(ctx, spec, swarm.ServiceCreateOptions{})
	if err != nil {
		t.Fatalf("creating service %s: %v", o.Name, err)
	}
	return resp.ID
}

// CreateSecret creates a secret and returns its ID.
func (s *Swarm) CreateSecret(t testing.TB, name string, data []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	resp, err := s.h.Docker.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: s.h.labels(t, "secret")}, Data: data})
	if err != nil {
		t.Fatalf("creating secret %s: %v", name, err)
	}
	return resp.ID
}

// Containers returns the task containers of a service on this node,
// exited ones included.
func (s *Swarm) Containers(t testing.TB, serviceID string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	cs, err := s.h.Docker.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+serviceID))})
	if err != nil {
		t.Fatalf("listing the containers of service %s: %v", serviceID, err)
	}
	return cs
}

// FreeLoopbackPort returns a TCP port nothing listens on now, for a port
// the test publishes in host mode.
func FreeLoopbackPort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// LoopbackURL is http://127.0.0.1:<port><path>.
func LoopbackURL(port int, path string) string {
	return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) + path
}

func ptr[T any](v T) *T { return &v }
