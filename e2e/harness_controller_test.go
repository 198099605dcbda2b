//go:build e2e

package e2e

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/docker/docker/api/types/mount"
)

// ControllerOptions configures StartController.
type ControllerOptions struct {
	Network     string            // required: the test network it joins (metrics on its IP:9090)
	CertsVolume string            // mounted at /certs; "" creates one; an absolute host path is bind-mounted
	StateVolume string            // mounted at /state; "" creates one
	Env         []string          // passed through as is
	Labels      map[string]string // extra labels
	Cmd         []string          // arguments to /controller
	// DockerSocket is the host socket bind-mounted at /var/run/docker.sock;
	// default /var/run/docker.sock (a test may point it at a proxy's socket).
	DockerSocket string
	Project      string // compose project it manages; default h.Project(t)
	Name         string // default <project>-controller
}

// Controller is a running controller container.
type Controller struct {
	*Container
	CertsVolume, StateVolume string
}

// MetricsURL is the controller's metrics endpoint on the test network.
func (c *Controller) MetricsURL() string {
	return "http://" + net.JoinHostPort(c.IP, "9090") + "/metrics"
}

// StartController runs the controller image labelled as part of the
// project, so it manages that project's containers.
func (h *Harness) StartController(t testing.TB, o ControllerOptions) *Controller {
	t.Helper()
	if o.Network == "" {
		t.Fatal("StartController: Network is required")
	}
	if o.CertsVolume == "" {
		o.CertsVolume = h.NewVolume(t)
	}
	if o.StateVolume == "" {
		o.StateVolume = h.NewVolume(t)
	}
	if o.DockerSocket == "" {
		o.DockerSocket = "/var/run/docker.sock"
	}
	s := &serviceSpec{image: h.ControllerImage(t), project: o.Project, name: o.Name, role: "controller",
		env: o.Env, cmd: o.Cmd, labels: map[string]string{}, networks: []netAttach{{name: o.Network}}}
	if s.project == "" {
		s.project = h.Project(t)
	}
	if s.name == "" {
		s.name = s.project + "-controller"
	}
	for k, v := range o.Labels {
		s.labels[k] = v
	}
	s.labels[LabelComposeProject] = s.project
	s.mounts = []mount.Mount{
		{Type: mount.TypeBind, Source: o.DockerSocket, Target: "/var/run/docker.sock"},
		{Type: volumeOrBind(o.CertsVolume), Source: o.CertsVolume, Target: "/certs"},
		{Type: mount.TypeVolume, Source: o.StateVolume, Target: "/state"},
	}
	return &Controller{Container: h.create(t, s), CertsVolume: o.CertsVolume, StateVolume: o.StateVolume}
}

// volumeOrBind lets a test give the controller a host directory as its certs
// root, so it can watch bundles appear with stat rather than helper
// containers.
func volumeOrBind(source string) mount.Type {
	if filepath.IsAbs(source) {
		return mount.TypeBind
	}
	return mount.TypeVolume
}
