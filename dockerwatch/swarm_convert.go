package dockerwatch

import (
	"net/netip"
	"strings"

	"github.com/docker/docker/api/types/swarm"
)

// FromService converts the engine's service into a Service. Like
// FromInspect it is pure and total: every pointer may be nil.
func FromService(s swarm.Service) Service {
	out := Service{
		ID: s.ID, Name: s.Spec.Name, Version: s.Version.Index,
		Labels: copyMap(s.Spec.Labels), Stack: s.Spec.Labels[LabelStackNamespace],
		ForceUpdate: s.Spec.TaskTemplate.ForceUpdate,
		CreatedAt:   s.CreatedAt, UpdatedAt: s.UpdatedAt,
	}
	if cs := s.Spec.TaskTemplate.ContainerSpec; cs != nil {
		out.Image, out.User, out.Hostname = cs.Image, cs.User, cs.Hostname
		out.Env = splitEnv(cs.Env)
		out.Secrets = fromSecretRefs(cs.Secrets)
		if cs.Healthcheck != nil {
			out.HealthStartPeriod = cs.Healthcheck.StartPeriod
		}
	}
	if p := s.PreviousSpec; p != nil && p.TaskTemplate.ContainerSpec != nil {
		out.PreviousSecrets = fromSecretRefs(p.TaskTemplate.ContainerSpec.Secrets)
	}
	nets := s.Spec.TaskTemplate.Networks
	if len(nets) == 0 {
		//lint:ignore SA1019 engines before API 1.44 may still fill it
		nets = s.Spec.Networks
	}
	for _, n := range nets {
		out.Networks = append(out.Networks, ServiceNetwork{ID: n.Target, Aliases: append([]string(nil), n.Aliases...)})
	}
	if ep := s.Spec.EndpointSpec; ep != nil {
		for _, p := range ep.Ports {
			out.TargetPorts = append(out.TargetPorts, Port{Port: int(p.TargetPort), Proto: string(p.Protocol)})
			out.HostPorts = out.HostPorts || p.PublishMode == swarm.PortConfigPublishModeHost
		}
	}
	switch m := s.Spec.Mode; {
	case m.Global != nil:
		out.Global = true
	case m.Replicated != nil && m.Replicated.Replicas != nil:
		out.Replicas = int(*m.Replicated.Replicas)
	}
	if uc := s.Spec.UpdateConfig; uc != nil {
		out.UpdateOrder, out.FailureAction = uc.Order, uc.FailureAction
	}
	if us := s.UpdateStatus; us != nil {
		out.UpdateState, out.UpdateMessage = string(us.State), us.Message
		if us.StartedAt != nil {
			out.UpdateStartedAt = *us.StartedAt
		}
	}
	return out
}

func fromSecretRefs(refs []*swarm.SecretReference) []SecretRef {
	var out []SecretRef
	for _, r := range refs {
		if r == nil {
			continue
		}
		ref := SecretRef{SecretID: r.SecretID, SecretName: r.SecretName}
		if f := r.File; f != nil {
			ref.Target, ref.UID, ref.GID, ref.Mode = f.Name, f.UID, f.GID, f.Mode
		}
		out = append(out, ref)
	}
	return out
}

// toSecretRefs is the inverse of fromSecretRefs, for a service update.
func toSecretRefs(refs []SecretRef) []*swarm.SecretReference {
	out := make([]*swarm.SecretReference, 0, len(refs))
	for _, r := range refs {
		out = append(out, &swarm.SecretReference{
			SecretID: r.SecretID, SecretName: r.SecretName,
			File: &swarm.SecretReferenceFileTarget{Name: r.Target, UID: r.UID, GID: r.GID, Mode: r.Mode},
		})
	}
	return out
}

// FromTask converts the engine's task into a Task.
func FromTask(t swarm.Task) Task {
	out := Task{
		ID: t.ID, ServiceID: t.ServiceID, Slot: t.Slot, NodeID: t.NodeID,
		State: string(t.Status.State), DesiredState: string(t.DesiredState),
		Message: t.Status.Message, Err: t.Status.Err, StateSince: t.Status.Timestamp,
		CreatedAt: t.CreatedAt, ForceUpdate: t.Spec.ForceUpdate,
	}
	if cs := t.Status.ContainerStatus; cs != nil {
		out.ContainerID = cs.ContainerID
	}
	if cs := t.Spec.ContainerSpec; cs != nil {
		out.Secrets = fromSecretRefs(cs.Secrets)
	}
	for _, a := range t.NetworksAttachments {
		if a.Network.Spec.Ingress {
			continue // the routing mesh's network: never a service's own address
		}
		n := Network{NetworkID: a.Network.ID}
		for _, cidr := range a.Addresses {
			p, err := netip.ParsePrefix(cidr)
			if err != nil {
				continue
			}
			if p.Addr().Is4() && n.IPAddress == "" {
				n.IPAddress = p.Addr().String()
			} else if p.Addr().Is6() && n.IPv6 == "" {
				n.IPv6 = p.Addr().String()
			}
		}
		if out.Networks == nil {
			out.Networks = map[string]Network{}
		}
		out.Networks[a.Network.Spec.Name] = n
	}
	return out
}

// FromSecret converts a secret's metadata.
func FromSecret(s swarm.Secret) Secret {
	return Secret{ID: s.ID, Name: s.Spec.Name, Labels: copyMap(s.Spec.Labels), CreatedAt: s.CreatedAt}
}

// FromConfig converts a config, data included.
func FromConfig(c swarm.Config) SwarmConfig {
	return SwarmConfig{ID: c.ID, Name: c.Spec.Name, Labels: copyMap(c.Spec.Labels),
		Data: append([]byte(nil), c.Spec.Data...), CreatedAt: c.CreatedAt}
}

// FromNode converts a node.
func FromNode(n swarm.Node) Node {
	out := Node{ID: n.ID, Hostname: n.Description.Hostname, Role: string(n.Spec.Role), State: string(n.Status.State)}
	if n.ManagerStatus != nil {
		out.Leader = n.ManagerStatus.Leader
	}
	return out
}

// nameOf returns the part of a stack service's name after its namespace,
// e.g. "web" for "demo_web" in stack "demo"; other names are returned
// whole.
func nameOf(service, stack string) string {
	if rest, ok := strings.CutPrefix(service, stack+"_"); ok && stack != "" && rest != "" {
		return rest
	}
	return service
}

// ShortName is the service's name within its stack: what `docker stack
// deploy` makes its DNS alias on the stack's networks ("web" for
// "demo_web").
func (s Service) ShortName() string { return nameOf(s.Name, s.Stack) }
