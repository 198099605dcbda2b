//go:build e2e

package e2e

import (
	"cmp"
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
)

// Container is a container the harness created.
type Container struct {
	ID, Name string
	Service  string // compose service, "" without WithService
	Project  string
	Networks []string
	IP       string // on the first network; "" if CreateOnly or none
}

// HTTPURL and HTTPSURL address the testservice's default ports by IP.
func (c *Container) HTTPURL(path string) string {
	return "http://" + net.JoinHostPort(c.IP, "8080") + path
}

func (c *Container) HTTPSURL(path string) string {
	return "https://" + net.JoinHostPort(c.IP, "8443") + path
}

type netAttach struct {
	name    string
	aliases []string
}

type serviceSpec struct {
	image, name, service, project, user, role string
	env                                       []string
	labels                                    map[string]string
	mounts                                    []mount.Mount
	networks                                  []netAttach
	cmd                                       []string
	health                                    *container.HealthConfig
	createOnly                                bool
	edits                                     []func(*container.Config, *container.HostConfig)
}

// ServiceOption configures RunService.
type ServiceOption func(*serviceSpec)

// WithName sets the exact container name (default <project>-<service>-1,
// compose style, or <project>-c<n>); the caller keeps it unique.
func WithName(name string) ServiceOption { return func(s *serviceSpec) { s.name = name } }

// WithService makes it a compose service of the test's project: compose
// labels, SERVICE_NAME, and the service name as a network alias.
func WithService(name string) ServiceOption { return func(s *serviceSpec) { s.service = name } }

// WithProject overrides the compose project (default h.Project(t)).
func WithProject(p string) ServiceOption { return func(s *serviceSpec) { s.project = p } }

// WithEnv adds KEY=VALUE entries; they override the harness defaults.
func WithEnv(kv ...string) ServiceOption {
	return func(s *serviceSpec) { s.env = append(s.env, kv...) }
}

// WithLabels adds container labels (the harness's own labels win).
func WithLabels(l map[string]string) ServiceOption {
	return func(s *serviceSpec) {
		for k, v := range l {
			s.labels[k] = v
		}
	}
}

// WithMode sets the testservice MODE.
func WithMode(mode string) ServiceOption { return WithEnv("MODE=" + mode) }

// WithCertsMount mounts source at target: a volume from NewVolume (Docker
// would silently create an unlabelled one for any other name), or an
// absolute host path (a bind mount, e.g. a t.TempDir()).
func WithCertsMount(source, target string) ServiceOption {
	return func(s *serviceSpec) {
		typ := mount.TypeVolume
		if filepath.IsAbs(source) {
			typ = mount.TypeBind
		}
		s.mounts = append(s.mounts, mount.Mount{Type: typ, Source: source, Target: target})
	}
}

// WithUser runs the process as "uid:gid".
func WithUser(u string) ServiceOption { return func(s *serviceSpec) { s.user = u } }

// WithNetwork attaches the container to a network, with extra aliases.
func WithNetwork(name string, aliases ...string) ServiceOption {
	return func(s *serviceSpec) { s.networks = append(s.networks, netAttach{name, aliases}) }
}

// WithCmd sets the arguments after the entrypoint.
func WithCmd(args ...string) ServiceOption { return func(s *serviceSpec) { s.cmd = args } }

// WithHealthcheck adds the compose-style HEALTHCHECK `/testservice healthcheck`.
func WithHealthcheck(interval time.Duration) ServiceOption {
	return func(s *serviceSpec) {
		s.health = &container.HealthConfig{Test: []string{"CMD", "/testservice", "healthcheck"},
			Interval: interval, Timeout: 3 * time.Second, Retries: 3}
	}
}

// WithConfig edits the create request directly, for anything else
// (restart policy, mounts with subpaths, ...).
func WithConfig(edit func(*container.Config, *container.HostConfig)) ServiceOption {
	return func(s *serviceSpec) { s.edits = append(s.edits, edit) }
}

// CreateOnly creates the container without starting it.
func CreateOnly() ServiceOption { return func(s *serviceSpec) { s.createOnly = true } }

// RunService creates (and unless CreateOnly, starts) a testservice container.
func (h *Harness) RunService(t testing.TB, opts ...ServiceOption) *Container {
	t.Helper()
	s := &serviceSpec{image: h.ServiceImage(t), project: h.Project(t), role: "service", labels: map[string]string{}}
	for _, o := range opts {
		o(s)
	}
	return h.create(t, s)
}

func (h *Harness) create(t testing.TB, s *serviceSpec) *Container {
	t.Helper()
	if s.service != "" {
		s.labels[LabelComposeProject] = s.project
		s.labels[LabelComposeService] = s.service
		s.labels["com.docker.compose.container-number"] = "1"
		s.labels["com.docker.compose.oneoff"] = "False"
	}
	for k, v := range h.labels(t, s.role) {
		s.labels[k] = v
	}
	if s.name == "" && s.service != "" {
		s.name = s.project + "-" + s.service + "-1"
	} else if s.name == "" {
		s.name = h.nextName(t, "c")
	}
	var defaults []string
	if s.role == "service" {
		// The test service loads its bundle once, as the Python services
		// the controller was built for do, unless a test asks for the
		// service kit's hot reload (RELOAD=watch): the restart-based path
		// is what most scenarios measure.
		defaults = []string{"SERVICE_NAME=" + cmp.Or(s.service, s.name), "RELOAD=off"}
	}
	cfg := &container.Config{Image: s.image, Env: mergeEnv(defaults, s.env),
		Labels: s.labels, User: s.user, Cmd: s.cmd, Healthcheck: s.health}
	hostCfg := &container.HostConfig{Mounts: s.mounts}
	for _, edit := range s.edits {
		edit(cfg, hostCfg)
	}
	var netCfg *network.NetworkingConfig
	for i := range s.networks {
		if s.service != "" {
			s.networks[i].aliases = append(s.networks[i].aliases, s.service)
		}
	}
	// API < 1.44 accepts only one network at create; connect the rest after.
	if len(s.networks) > 0 {
		first := s.networks[0]
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{first.name: {Aliases: first.aliases}}}
	}
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	resp, err := h.Docker.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, s.name)
	if err != nil {
		t.Fatalf("creating container %s: %v", s.name, err)
	}
	c := &Container{ID: resp.ID, Name: s.name, Service: s.service, Project: s.project}
	for i, n := range s.networks {
		c.Networks = append(c.Networks, n.name)
		if i == 0 {
			continue
		}
		if err := h.Docker.NetworkConnect(ctx, n.name, resp.ID, &network.EndpointSettings{Aliases: n.aliases}); err != nil {
			t.Fatalf("connecting %s to %s: %v", s.name, n.name, err)
		}
	}
	if !s.createOnly {
		h.Start(t, c)
	}
	return c
}

// Start starts a created container and fills in its IP.
func (h *Harness) Start(t testing.TB, c *Container) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	if err := h.Docker.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		t.Fatalf("starting %s: %v\nlogs:\n%s", c.Name, err, h.Logs(t, c.ID))
	}
	if len(c.Networks) > 0 {
		c.IP = h.Inspect(t, c.ID).NetworkSettings.Networks[c.Networks[0]].IPAddress
	}
}

// mergeEnv returns defaults overridden by env, one entry per key (with
// duplicate keys, which one a process sees depends on its runtime).
func mergeEnv(defaults, env []string) []string {
	out := []string{}
	index := map[string]int{}
	for _, kv := range append(defaults, env...) {
		k, _, _ := strings.Cut(kv, "=")
		if i, ok := index[k]; ok {
			out[i] = kv
			continue
		}
		index[k] = len(out)
		out = append(out, kv)
	}
	return out
}
