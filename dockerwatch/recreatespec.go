package dockerwatch

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
)

// composeLabelPrefix marks the labels docker compose (v1 and v2) reads to
// decide whether a container is up to date. Recreate must leave them exactly
// as they are, or the next `docker compose up` recreates the container again.
const composeLabelPrefix = "com.docker.compose."

// errNotRecreatable is wrapped by every "this container can't be recreated
// safely" error, which is raised before anything is changed.
var errNotRecreatable = errors.New("container cannot be recreated safely")

// recreateSpec is everything needed to create the replacement container.
type recreateSpec struct {
	// Name is the container name without the leading "/".
	Name string
	// Config, HostConfig and Networking are passed to ContainerCreate.
	// Networking holds at most one endpoint: API < 1.44 rejects more.
	Config     *container.Config
	HostConfig *container.HostConfig
	Networking *network.NetworkingConfig
	// Extra are the networks to connect after create, sorted by name.
	Extra []extraEndpoint
}

// extraEndpoint is one network connected after create.
type extraEndpoint struct {
	Network  string // network name
	Settings *network.EndpointSettings
}

// buildRecreateSpec derives, purely from the old container's inspect
// response, the create request for an identical container that also carries
// addLabels and lacks removeLabels.
//
// image, if not empty, replaces Config.Image (Recreate passes the old image
// ID when the configured tag has moved on since the old container was made).
//
// Config and HostConfig are copied whole, because everything the user (or
// compose) configured lives there: env, cmd, entrypoint, user, working dir,
// restart policy, healthcheck, ports, resources, caps, security opts,
// devices, tmpfs, log config, extra hosts, dns, init, stop signal/timeout,
// tty/stdin, links, network mode, volumes-from. Only what the engine filled
// in at runtime, and what would make the create fail or lose data, is
// adjusted:
//
//   - Hostname equal to the old short ID is the engine's default, not a
//     choice; it is cleared so the new container gets its own (as compose
//     does).
//   - With network_mode container:<x>, hostname, domainname and exposed
//     ports come from the other container or the image, and the engine
//     rejects them in a create request.
//   - Anonymous volumes (from Config.Volumes or an image VOLUME, or a
//     volume mount without a source) are reattached by their generated name,
//     so their data survives (watchtower#1906).
//   - Network aliases lose the old short ID, which engines before API 1.45
//     add on their own (and will add the new one).
//
// The inspect response is not modified; slices and maps that are changed
// are copied first.
func buildRecreateSpec(old container.InspectResponse, image string, addLabels map[string]string, removeLabels []string) (recreateSpec, error) {
	if old.ContainerJSONBase == nil || old.Config == nil || old.HostConfig == nil {
		return recreateSpec{}, fmt.Errorf("%w: incomplete inspect response", errNotRecreatable)
	}
	name := strings.TrimPrefix(old.Name, "/")
	if name == "" {
		return recreateSpec{}, fmt.Errorf("%w: container %s has no name", errNotRecreatable, old.ID)
	}
	labels, err := editLabels(old.Config.Labels, addLabels, removeLabels)
	if err != nil {
		return recreateSpec{}, err
	}

	cfg := *old.Config
	hc := *old.HostConfig
	cfg.Labels = labels
	if image != "" {
		cfg.Image = image
	}
	if short := shortID(old.ID); short != "" && cfg.Hostname == short {
		cfg.Hostname = ""
	}
	if hc.NetworkMode.IsContainer() {
		cfg.Hostname, cfg.Domainname = "", ""
		cfg.ExposedPorts = nil
	}
	hc.Mounts = reattachVolumes(&cfg, &hc, old.Mounts)

	spec := recreateSpec{Name: name, Config: &cfg, HostConfig: &hc}
	spec.Networking, spec.Extra = splitEndpoints(hc.NetworkMode, old.NetworkSettings, shortID(old.ID))
	if (hc.NetworkMode.IsDefault() || hc.NetworkMode == "") && spec.Networking != nil {
		// The default mode means "bridge" to the engine. A container that
		// is no longer on bridge must be created on its own first network,
		// named as the mode, or the engine attaches it to bridge again.
		for name := range spec.Networking.EndpointsConfig {
			if name != network.NetworkBridge {
				hc.NetworkMode = container.NetworkMode(name)
			}
		}
	}
	return spec, nil
}

// editLabels returns a copy of labels with remove deleted and add set.
// Compose's labels may not be touched (see composeLabelPrefix).
func editLabels(labels, add map[string]string, remove []string) (map[string]string, error) {
	for _, k := range remove {
		if strings.HasPrefix(k, composeLabelPrefix) {
			return nil, fmt.Errorf("%w: refusing to remove compose label %q", errNotRecreatable, k)
		}
	}
	for k := range add {
		if k == "" || strings.HasPrefix(k, composeLabelPrefix) {
			return nil, fmt.Errorf("%w: refusing to set label %q", errNotRecreatable, k)
		}
	}
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	for _, k := range remove {
		delete(out, k)
	}
	maps.Copy(out, add)
	return out, nil
}

// reattachVolumes returns HostConfig.Mounts for the new container: the old
// Mounts with every source-less volume mount given the name of the volume
// the engine generated for it, plus one named volume mount for every
// Config.Volumes path (image VOLUMEs included: inspect merges them in) that
// nothing else mounts. Without this the engine would create fresh, empty
// anonymous volumes and the data would silently stay behind.
//
// Binds and VolumesFrom are kept as they are (they already name what they
// mount), so only paths mounted by neither Binds, Mounts nor Tmpfs are
// added; volumes-from mounts are not in Config.Volumes and stay with
// VolumesFrom. The engine mounts explicit mounts first and skips
// Config.Volumes paths that are already mounted, so no duplicate arises.
func reattachVolumes(cfg *container.Config, hc *container.HostConfig, points []container.MountPoint) []mount.Mount {
	volumeAt := map[string]container.MountPoint{}
	for _, mp := range points {
		if mp.Type == mount.TypeVolume && mp.Name != "" {
			volumeAt[path.Clean(mp.Destination)] = mp
		}
	}
	mounted := map[string]bool{}
	for _, b := range hc.Binds {
		if dst, ok := bindDestination(b); ok {
			mounted[path.Clean(dst)] = true
		}
	}
	for dst := range hc.Tmpfs {
		mounted[path.Clean(dst)] = true
	}

	var out []mount.Mount
	for _, m := range hc.Mounts {
		dst := path.Clean(m.Target)
		mounted[dst] = true
		if mp, ok := volumeAt[dst]; ok && m.Type == mount.TypeVolume && m.Source == "" {
			m.Source = mp.Name
		}
		out = append(out, m)
	}
	for _, dst := range slices.Sorted(maps.Keys(cfg.Volumes)) {
		mp, ok := volumeAt[path.Clean(dst)]
		if !ok || mounted[path.Clean(dst)] {
			continue
		}
		m := mount.Mount{Type: mount.TypeVolume, Source: mp.Name, Target: mp.Destination, ReadOnly: !mp.RW}
		if mp.Driver != "" && mp.Driver != "local" {
			m.VolumeOptions = &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: mp.Driver}}
		}
		out = append(out, m)
		mounted[path.Clean(dst)] = true
	}
	return out
}

// bindDestination returns the container path of a Binds entry,
// "source:destination[:options]" (Linux syntax; the engine reports binds
// the way they were given).
func bindDestination(bind string) (string, bool) {
	parts := strings.Split(bind, ":")
	if len(parts) < 2 || parts[1] == "" {
		return "", false
	}
	return parts[1], true
}

// splitEndpoints returns the endpoint to pass at create (the network named
// by NetworkMode, if the container is on it) and the others, connected after
// create: engines before API 1.44 accept only one endpoint at create.
// Containers sharing another namespace (host, none, container:<x>) have no
// endpoints of their own to recreate.
func splitEndpoints(mode container.NetworkMode, ns *container.NetworkSettings, oldShortID string) (*network.NetworkingConfig, []extraEndpoint) {
	if ns == nil || len(ns.Networks) == 0 || mode.IsHost() || mode.IsNone() || mode.IsContainer() {
		return nil, nil
	}
	primary := string(mode)
	if mode.IsDefault() || mode == "" {
		primary = network.NetworkBridge
	}
	var first *network.NetworkingConfig
	var extra []extraEndpoint
	for _, name := range slices.Sorted(maps.Keys(ns.Networks)) {
		ep := ns.Networks[name]
		settings := endpointConfig(ep, oldShortID)
		if first == nil && (name == primary || (ep != nil && ep.NetworkID != "" && ep.NetworkID == primary)) {
			first = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: settings}}
			continue
		}
		extra = append(extra, extraEndpoint{Network: name, Settings: settings})
	}
	if first == nil && len(extra) > 0 && (mode.IsDefault() || mode == "") {
		// Not on the network its mode names (e.g. "default" but only on a
		// user network): create it on its first network instead, so the
		// engine does not attach it to a network it never had.
		first = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{extra[0].Network: extra[0].Settings}}
		extra = slices.Clip(extra[1:])
		if len(extra) == 0 {
			extra = nil
		}
	}
	return first, extra
}

// endpointConfig keeps the configuration part of an endpoint (aliases,
// static IPs, links, driver options, gateway priority) and drops the
// operational data (IDs, addresses the engine assigned, the generated MAC).
// The old short ID is dropped from the aliases: old engines add it
// implicitly, and the new container gets its own.
func endpointConfig(ep *network.EndpointSettings, oldShortID string) *network.EndpointSettings {
	if ep == nil {
		return &network.EndpointSettings{}
	}
	out := &network.EndpointSettings{
		Links:      slices.Clone(ep.Links),
		DriverOpts: maps.Clone(ep.DriverOpts),
		GwPriority: ep.GwPriority,
	}
	if ep.IPAMConfig != nil {
		ipam := *ep.IPAMConfig
		ipam.LinkLocalIPs = slices.Clone(ep.IPAMConfig.LinkLocalIPs)
		out.IPAMConfig = &ipam
	}
	for _, a := range ep.Aliases {
		if a != "" && a != oldShortID && !slices.Contains(out.Aliases, a) {
			out.Aliases = append(out.Aliases, a)
		}
	}
	return out
}

// shortID is ShortID for matching the engine's implicit alias: an ID too
// short to have one matches nothing.
func shortID(id string) string {
	if len(id) < shortIDLen {
		return ""
	}
	return ShortID(id)
}
