package dockerwatch

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
)

// shortIDLen is the length of the short container ID the engine uses as a
// default hostname and, before API 1.45, as an implicit network alias.
const shortIDLen = 12

// FromInspect converts the engine's inspect response into a Container. It is
// pure and total: every pointer in the response may be nil (the SDK models
// State, Config, HostConfig and NetworkSettings as pointers, and the embedded
// base too), and fields only newer APIs return are simply absent on old ones.
// Unparseable timestamps and ports are dropped rather than failing the whole
// container, because one odd field must not hide a container from the
// controller.
func FromInspect(resp container.InspectResponse) Container {
	var c Container
	if b := resp.ContainerJSONBase; b != nil {
		c.ID = b.ID
		c.Name = strings.TrimPrefix(b.Name, "/")
		c.Image = b.Image // the image ID; replaced by Config.Image below if set
		c.ImageID = b.Image
		c.Created = parseTime(b.Created)
		c.RestartCount = b.RestartCount
		if s := b.State; s != nil {
			c.State = State(s.Status)
			c.ExitCode = s.ExitCode
			c.StartedAt = parseTime(s.StartedAt)
			c.FinishedAt = parseTime(s.FinishedAt)
			if s.Health != nil && s.Health.Status != container.NoHealthcheck {
				c.Health = s.Health.Status
			}
		}
		if hc := b.HostConfig; hc != nil {
			c.RestartPolicy = string(hc.RestartPolicy.Name)
			c.NetworkMode = string(hc.NetworkMode)
		}
	}
	if cfg := resp.Config; cfg != nil {
		if cfg.Image != "" {
			// What the user asked for ("nginx:1.27"), which is what a recreate
			// must use, rather than the resolved image ID.
			c.Image = cfg.Image
		}
		c.Hostname = cfg.Hostname
		c.User = cfg.User
		c.Labels = copyMap(cfg.Labels)
		c.Env = splitEnv(cfg.Env)
		if cfg.Healthcheck != nil {
			c.HealthStartPeriod = cfg.Healthcheck.StartPeriod
		}
		c.ExposedPorts = parsePorts(cfg.ExposedPorts)
	}
	c.Project = c.Labels[LabelComposeProject]
	c.Service = c.Labels[LabelComposeService]
	if c.Service == "" {
		c.Service = c.Name
	}
	if ns := resp.NetworkSettings; ns != nil {
		c.Networks = convertNetworks(ns.Networks, c.ID)
	}
	c.Mounts = convertMounts(resp.Mounts)
	return c
}

// parseTime parses the engine's RFC 3339 timestamps. The engine reports
// "never" as Go's zero time ("0001-01-01T00:00:00Z"), which parses to a time
// for which IsZero is true; anything unparseable is treated the same way.
func parseTime(s string) time.Time {
	if s == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.IsZero() {
		return time.Time{}
	}
	return t
}

func copyMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// splitEnv splits "KEY=VALUE" at the first "=", so values may contain "=".
// An entry without "=" is a key with an empty value.
func splitEnv(env []string) map[string]string {
	if len(env) == 0 {
		return nil
	}
	out := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			continue
		}
		out[k] = v
	}
	return out
}

// parsePorts turns the exposed-port set ("8443/tcp", "53/udp", or a bare
// "80" meaning tcp) into a sorted list. Keys are ranged over as strings so
// this file does not need go-connections' nat types.
func parsePorts[K ~string, V any](set map[K]V) []Port {
	var ports []Port
	for k := range set {
		num, proto, found := strings.Cut(string(k), "/")
		if !found || proto == "" {
			proto = "tcp"
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 1 || n > 65535 {
			continue
		}
		ports = append(ports, Port{Port: n, Proto: strings.ToLower(proto)})
	}
	slices.SortFunc(ports, func(a, b Port) int {
		return cmp.Or(cmp.Compare(a.Port, b.Port), strings.Compare(a.Proto, b.Proto))
	})
	return ports
}

// convertNetworks keeps, per network, the ID, addresses and aliases. Engines
// before API 1.45 add the container's short ID to Aliases on their own; it is
// dropped here so the model means the same on every engine: the aliases the
// user asked for (what a recreate must pass back), no more.
func convertNetworks(eps map[string]*network.EndpointSettings, id string) map[string]Network {
	if len(eps) == 0 {
		return nil
	}
	short := ""
	if len(id) >= shortIDLen {
		short = id[:shortIDLen]
	}
	out := make(map[string]Network, len(eps))
	for name, ep := range eps {
		if ep == nil {
			out[name] = Network{}
			continue
		}
		var aliases []string
		for _, a := range ep.Aliases {
			if a != "" && a != short {
				aliases = append(aliases, a)
			}
		}
		out[name] = Network{
			NetworkID: ep.NetworkID,
			IPAddress: ep.IPAddress,
			IPv6:      ep.GlobalIPv6Address,
			Aliases:   aliases,
		}
	}
	return out
}

// convertMounts keeps every mount, anonymous volumes included: their Name is
// the generated volume name, and a recreate must reattach that same volume or
// the data is lost (watchtower#1906).
func convertMounts(mps []container.MountPoint) []Mount {
	if len(mps) == 0 {
		return nil
	}
	out := make([]Mount, 0, len(mps))
	for _, m := range mps {
		out = append(out, Mount{
			Type:        string(m.Type),
			Name:        m.Name,
			Source:      m.Source,
			Destination: m.Destination,
			RW:          m.RW,
		})
	}
	return out
}
