package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"maps"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
)

// ErrServiceChanged is returned by UpdateService when the service's spec
// moved on since the caller read it: the caller must read it again and
// decide on what it is now, never overwrite someone else's change.
var ErrServiceChanged = errors.New("service changed since it was read")

// SwarmInfo says whether the engine is in a swarm and a manager.
func (c *Client) SwarmInfo(ctx context.Context) (SwarmInfo, error) {
	info, err := c.sdk.Info(ctx)
	if err != nil {
		return SwarmInfo{}, fmt.Errorf("reading docker info: %w", err)
	}
	s := info.Swarm
	return SwarmInfo{NodeID: s.NodeID, LocalState: string(s.LocalNodeState), ControlAvailable: s.ControlAvailable,
		Managers: s.Managers, Nodes: s.Nodes}, nil
}

// Services lists every service.
func (c *Client) Services(ctx context.Context) ([]Service, error) {
	list, err := c.sdk.ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing services: %w", err)
	}
	out := make([]Service, 0, len(list))
	for _, s := range list {
		out = append(out, c.fromService(s))
	}
	return out, nil
}

// fromService is FromService with the client's KeepEnv applied.
func (c *Client) fromService(s swarm.Service) Service {
	out := FromService(s)
	out.Env = onlyEnv(out.Env, c.KeepEnv)
	return out
}

// Service returns one service by ID or name. An unknown service yields an
// error wrapping ErrNotFound and the engine's own not-found error.
func (c *Client) Service(ctx context.Context, id string) (Service, error) {
	s, _, err := c.sdk.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return Service{}, fmt.Errorf("inspecting service %s: %w: %w", id, ErrNotFound, err)
		}
		return Service{}, fmt.Errorf("inspecting service %s: %w", id, err)
	}
	return c.fromService(s), nil
}

// Tasks lists the tasks of one service, history included (shut-down
// tasks the engine still keeps).
func (c *Client) Tasks(ctx context.Context, serviceID string) ([]Task, error) {
	list, err := c.sdk.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
	if err != nil {
		return nil, fmt.Errorf("listing tasks of service %s: %w", serviceID, err)
	}
	out := make([]Task, 0, len(list))
	for _, t := range list {
		if t.ServiceID != serviceID {
			continue // the filter also matches by name prefix
		}
		out = append(out, FromTask(t))
	}
	return out, nil
}

// Nodes lists the swarm's nodes.
func (c *Client) Nodes(ctx context.Context) ([]Node, error) {
	list, err := c.sdk.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	out := make([]Node, 0, len(list))
	for _, n := range list {
		out = append(out, FromNode(n))
	}
	return out, nil
}

// Secrets lists the secrets carrying label ("key" or "key=value").
func (c *Client) Secrets(ctx context.Context, label string) ([]Secret, error) {
	list, err := c.sdk.SecretList(ctx, swarm.SecretListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("listing secrets labelled %s: %w", label, err)
	}
	out := make([]Secret, 0, len(list))
	for _, s := range list {
		out = append(out, FromSecret(s))
	}
	return out, nil
}

// CreateSecret creates a secret and returns its ID. data is sent to the
// manager and never kept.
func (c *Client) CreateSecret(ctx context.Context, name string, data []byte, labels map[string]string) (string, error) {
	resp, err := c.sdk.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: name, Labels: maps.Clone(labels)}, Data: data})
	if err != nil {
		return "", fmt.Errorf("creating secret %s: %w", name, err)
	}
	return resp.ID, nil
}

// RemoveSecret removes a secret. One that is already gone is not an
// error; one still in use by a service is (the engine refuses).
func (c *Client) RemoveSecret(ctx context.Context, id string) error {
	if err := c.sdk.SecretRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing secret %s: %w", id, err)
	}
	return nil
}

// Configs lists the configs carrying label, with their data.
func (c *Client) Configs(ctx context.Context, label string) ([]SwarmConfig, error) {
	list, err := c.sdk.ConfigList(ctx, swarm.ConfigListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("listing configs labelled %s: %w", label, err)
	}
	out := make([]SwarmConfig, 0, len(list))
	for _, cfg := range list {
		out = append(out, FromConfig(cfg))
	}
	return out, nil
}

// CreateConfig creates a config and returns its ID.
func (c *Client) CreateConfig(ctx context.Context, name string, data []byte, labels map[string]string) (string, error) {
	resp, err := c.sdk.ConfigCreate(ctx, swarm.ConfigSpec{Annotations: swarm.Annotations{Name: name, Labels: maps.Clone(labels)}, Data: data})
	if err != nil {
		return "", fmt.Errorf("creating config %s: %w", name, err)
	}
	return resp.ID, nil
}

// RemoveConfig removes a config; one already gone is not an error.
func (c *Client) RemoveConfig(ctx context.Context, id string) error {
	if err := c.sdk.ConfigRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing config %s: %w", id, err)
	}
	return nil
}

// UpdateService applies ch to the service's current spec, provided that
// spec is still at version (what the caller decided on); otherwise it
// returns ErrServiceChanged and changes nothing. Everything ch does not
// name is sent back exactly as the engine holds it.
func (c *Client) UpdateService(ctx context.Context, id string, version uint64, ch ServiceChange) error {
	s, _, err := c.sdk.ServiceInspectWithRaw(ctx, id, swarm.ServiceInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("updating service %s: %w: %w", id, ErrNotFound, err)
		}
		return fmt.Errorf("updating service %s: %w", id, err)
	}
	if s.Version.Index != version {
		return fmt.Errorf("updating service %s: %w (version %d, decided on %d)", s.Spec.Name, ErrServiceChanged, s.Version.Index, version)
	}
	spec := s.Spec
	ApplyChange(&spec, ch)
	if _, err := c.sdk.ServiceUpdate(ctx, id, s.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
		return fmt.Errorf("updating service %s: %w", s.Spec.Name, err)
	}
	return nil
}

// ImagePorts returns the ports an image EXPOSEs, the fallback of where to
// probe a service that names none. A manager may not have the image (its
// tasks run on workers): that is no error, just no ports.
func (c *Client) ImagePorts(ctx context.Context, ref string) ([]Port, error) {
	resp, err := c.sdk.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspecting image %s: %w", ref, err)
	}
	if resp.Config == nil {
		return nil, nil
	}
	return parsePorts(resp.Config.ExposedPorts), nil
}
