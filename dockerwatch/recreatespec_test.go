package dockerwatch

import (
	"cmp"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

const (
	rcOldID = "aaaaaaaaaaaa0000000000000000000000000000000000000000000000000000"
	rcNewID = "bbbbbbbbbbbb1111111111111111111111111111111111111111111111111111"
	rcShort = "aaaaaaaaaaaa"
)

type oldOpt func(*container.InspectResponse)

// oldFixture is a running compose service "web" on network "app_default"
// (its NetworkMode) with a named volume, restart policy and healthcheck, as
// Engine 20.10 reports it: the short ID is the default hostname and an
// implicit alias.
func oldFixture(opts ...oldOpt) container.InspectResponse {
	r := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:    rcOldID,
			Name:  "/app-web-1",
			Image: "sha256:1111",
			State: &container.State{Status: "running", Running: true},
			HostConfig: &container.HostConfig{
				Binds:         []string{"app_data:/data:rw"},
				NetworkMode:   "app_default",
				RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
				PortBindings:  nat.PortMap{"8443/tcp": {{HostIP: "127.0.0.1", HostPort: "8443"}}},
				CapAdd:        []string{"CAP_NET_ADMIN"},
				CapDrop:       []string{"CAP_MKNOD"},
				SecurityOpt:   []string{"no-new-privileges:true"},
				ExtraHosts:    []string{"db.local:10.0.0.5"},
				DNS:           []string{"10.0.0.53"},
				Init:          ptr(true),
				LogConfig:     container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m"}},
				Resources: container.Resources{
					Memory:   64 << 20,
					NanoCPUs: 500_000_000,
					Devices:  []container.DeviceMapping{{PathOnHost: "/dev/fuse", PathInContainer: "/dev/fuse", CgroupPermissions: "rwm"}},
				},
			},
		},
		Config: &container.Config{
			Hostname:    rcShort,
			User:        "1000:1000",
			Env:         []string{"A=1", "B=x=y"},
			Cmd:         []string{"serve", "--tls"},
			Entrypoint:  []string{"/app"},
			WorkingDir:  "/srv",
			Image:       "app:1.2",
			Tty:         true,
			OpenStdin:   true,
			StopSignal:  "SIGQUIT",
			StopTimeout: ptr(20),
			Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/app", "health"}, Interval: 5 * time.Second, Retries: 3},
			Labels: map[string]string{
				"com.docker.compose.project":     "app",
				"com.docker.compose.service":     "web",
				"com.docker.compose.config-hash": "c0ffee",
				"crank.security.observed":        "plaintext",
			},
			ExposedPorts: nat.PortSet{"8443/tcp": {}},
		},
		Mounts: []container.MountPoint{
			{Type: mount.TypeVolume, Name: "app_data", Destination: "/data", Driver: "local", RW: true},
		},
		NetworkSettings: &container.NetworkSettings{Networks: map[string]*network.EndpointSettings{
			"app_default": {
				NetworkID: "n1", EndpointID: "e1", IPAddress: "172.30.0.9", MacAddress: "02:42:ac:1e:00:09",
				Aliases: []string{"web", rcShort, "app-web-1"},
			},
		}},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func ptr[T any](v T) *T { return &v }

func withNetwork(name string, ep *network.EndpointSettings) oldOpt {
	return func(r *container.InspectResponse) { r.NetworkSettings.Networks[name] = ep }
}

func withNetworkMode(mode string) oldOpt {
	return func(r *container.InspectResponse) { r.HostConfig.NetworkMode = container.NetworkMode(mode) }
}

func withMountPoint(mp container.MountPoint) oldOpt {
	return func(r *container.InspectResponse) { r.Mounts = append(r.Mounts, mp) }
}

func withConfigVolume(dst string) oldOpt {
	return func(r *container.InspectResponse) {
		if r.Config.Volumes == nil {
			r.Config.Volumes = map[string]struct{}{}
		}
		r.Config.Volumes[dst] = struct{}{}
	}
}

func withHost(edit func(*container.HostConfig)) oldOpt {
	return func(r *container.InspectResponse) { edit(r.HostConfig) }
}

func withConfig(edit func(*container.Config)) oldOpt {
	return func(r *container.InspectResponse) { edit(r.Config) }
}

// deepCopy copies an inspect response through JSON, to check that building
// a spec leaves its input alone.
func deepCopy(t *testing.T, r container.InspectResponse) container.InspectResponse {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var out container.InspectResponse
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBuildRecreateSpecPreservesEverythingConfigured(t *testing.T) {
	t.Parallel()
	old := oldFixture()
	before := deepCopy(t, old)
	spec, err := buildRecreateSpec(old, "", map[string]string{"crank.security.observed": "tls", "crank.x": "1"}, []string{"crank.gone"})
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if got := deepCopy(t, old); !reflect.DeepEqual(got, before) {
		t.Errorf("the inspect response was modified:\ngot  %+v\nwant %+v", got.Config, before.Config)
	}
	if spec.Name != "app-web-1" {
		t.Errorf("got name %q, want %q", spec.Name, "app-web-1")
	}

	// Config: identical but for the labels and the engine-chosen hostname.
	wantCfg := *before.Config
	wantCfg.Hostname = ""
	wantCfg.Labels = map[string]string{
		"com.docker.compose.project":     "app",
		"com.docker.compose.service":     "web",
		"com.docker.compose.config-hash": "c0ffee",
		"crank.security.observed":        "tls",
		"crank.x":                        "1",
	}
	if !reflect.DeepEqual(*spec.Config, wantCfg) {
		t.Errorf("got config\n%+v\nwant\n%+v", *spec.Config, wantCfg)
	}
	// HostConfig: identical (Binds already name the volume; nothing to add).
	if !reflect.DeepEqual(*spec.HostConfig, *before.HostConfig) {
		t.Errorf("got host config\n%+v\nwant\n%+v", *spec.HostConfig, *before.HostConfig)
	}
	wantNet := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		"app_default": {Aliases: []string{"web", "app-web-1"}},
	}}
	if !reflect.DeepEqual(spec.Networking, wantNet) {
		t.Errorf("got networking %+v, want %+v", spec.Networking.EndpointsConfig["app_default"], wantNet.EndpointsConfig["app_default"])
	}
	if len(spec.Extra) != 0 {
		t.Errorf("got extra endpoints %+v, want none", spec.Extra)
	}
}

func TestBuildRecreateSpecImage(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		image string // what Recreate passes
		want  string // Config.Image of the new container
	}{
		"should keep the configured reference when the tag still names the old image": {image: "", want: "app:1.2"},
		"should use the old image ID when the tag has moved on":                       {image: "sha256:1111", want: "sha256:1111"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec, err := buildRecreateSpec(oldFixture(), tc.image, nil, nil)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if spec.Config.Image != tc.want {
				t.Errorf("got image %q, want %q", spec.Config.Image, tc.want)
			}
		})
	}
}

func TestBuildRecreateSpecMounts(t *testing.T) {
	t.Parallel()
	anon := "5f3c0e1d9a7b"
	for name, tc := range map[string]struct {
		opts []oldOpt
		// wantMounts is HostConfig.Mounts of the new container; Binds and
		// Tmpfs must come through unchanged in every case.
		wantMounts []mount.Mount
	}{
		"should reattach an anonymous volume from Config.Volumes by its name": {
			opts: []oldOpt{withConfigVolume("/cache"),
				withMountPoint(container.MountPoint{Type: mount.TypeVolume, Name: anon, Destination: "/cache", Driver: "local", RW: true})},
			wantMounts: []mount.Mount{{Type: mount.TypeVolume, Source: anon, Target: "/cache"}},
		},
		"should keep a third-party volume driver when reattaching": {
			opts: []oldOpt{withConfigVolume("/cache"),
				withMountPoint(container.MountPoint{Type: mount.TypeVolume, Name: anon, Destination: "/cache", Driver: "rexray", RW: true})},
			wantMounts: []mount.Mount{{Type: mount.TypeVolume, Source: anon, Target: "/cache",
				VolumeOptions: &mount.VolumeOptions{DriverConfig: &mount.Driver{Name: "rexray"}}}},
		},
		"should give a source-less volume mount the name of its volume": {
			opts: []oldOpt{withHost(func(hc *container.HostConfig) {
				hc.Mounts = []mount.Mount{{Type: mount.TypeVolume, Target: "/cache/", VolumeOptions: &mount.VolumeOptions{NoCopy: true}}}
			}), withMountPoint(container.MountPoint{Type: mount.TypeVolume, Name: anon, Destination: "/cache", RW: true})},
			wantMounts: []mount.Mount{{Type: mount.TypeVolume, Source: anon, Target: "/cache/", VolumeOptions: &mount.VolumeOptions{NoCopy: true}}},
		},
		"should not add a mount for an image volume that a bind already covers": {
			opts:       []oldOpt{withConfigVolume("/data")},
			wantMounts: nil,
		},
		"should not add a mount for an image volume that a tmpfs covers": {
			opts: []oldOpt{withConfigVolume("/run"), withHost(func(hc *container.HostConfig) { hc.Tmpfs = map[string]string{"/run": "size=1m"} })},
		},
		"should leave volumes-from mounts to VolumesFrom": {
			opts: []oldOpt{withHost(func(hc *container.HostConfig) { hc.VolumesFrom = []string{"other:ro"} }),
				withMountPoint(container.MountPoint{Type: mount.TypeVolume, Name: "other-vol", Destination: "/shared"})},
		},
		"should keep explicit mounts as they are": {
			opts: []oldOpt{withHost(func(hc *container.HostConfig) {
				hc.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: "/srv/certs", Target: "/certs", ReadOnly: true},
					{Type: mount.TypeVolume, Source: "named", Target: "/named"}}
			}), withMountPoint(container.MountPoint{Type: mount.TypeVolume, Name: "named", Destination: "/named", RW: true})},
			wantMounts: []mount.Mount{{Type: mount.TypeBind, Source: "/srv/certs", Target: "/certs", ReadOnly: true},
				{Type: mount.TypeVolume, Source: "named", Target: "/named"}},
		},
		"should not invent a volume for a Config.Volumes path the engine did not mount": {
			opts: []oldOpt{withConfigVolume("/ghost")},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			old := oldFixture(tc.opts...)
			spec, err := buildRecreateSpec(old, "", nil, nil)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(spec.HostConfig.Mounts, tc.wantMounts) {
				t.Errorf("got mounts %+v, want %+v", spec.HostConfig.Mounts, tc.wantMounts)
			}
			if !reflect.DeepEqual(spec.HostConfig.Binds, old.HostConfig.Binds) || !reflect.DeepEqual(spec.HostConfig.Tmpfs, old.HostConfig.Tmpfs) ||
				!reflect.DeepEqual(spec.HostConfig.VolumesFrom, old.HostConfig.VolumesFrom) {
				t.Errorf("got binds %v tmpfs %v volumes-from %v, want them unchanged", spec.HostConfig.Binds, spec.HostConfig.Tmpfs, spec.HostConfig.VolumesFrom)
			}
			if !reflect.DeepEqual(spec.Config.Volumes, old.Config.Volumes) {
				t.Errorf("got Config.Volumes %v, want %v", spec.Config.Volumes, old.Config.Volumes)
			}
		})
	}
}

func TestBuildRecreateSpecNetworks(t *testing.T) {
	t.Parallel()
	static := &network.EndpointSettings{
		NetworkID: "n2", IPAddress: "10.9.0.7", Aliases: []string{rcShort, "api", "api"},
		IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: "10.9.0.7", IPv6Address: "fd00::7"},
		Links:      []string{"db:database"}, DriverOpts: map[string]string{"k": "v"},
	}
	for name, tc := range map[string]struct {
		opts []oldOpt
		// wantCreate is the endpoint passed at create (nil: none);
		// wantExtra the networks connected afterwards, in order.
		wantCreate *network.NetworkingConfig
		wantExtra  []extraEndpoint
		// wantHostname and wantExposed are the new Config's values.
		wantHostname string
		// wantMode is the new NetworkMode; "" means unchanged.
		wantMode    container.NetworkMode
		wantExposed nat.PortSet
	}{
		"should create on the NetworkMode network and connect the others with aliases and static IPs": {
			opts: []oldOpt{withNetwork("backend", static)},
			wantCreate: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				"app_default": {Aliases: []string{"web", "app-web-1"}}}},
			wantExtra: []extraEndpoint{{Network: "backend", Settings: &network.EndpointSettings{
				Aliases:    []string{"api"},
				IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: "10.9.0.7", IPv6Address: "fd00::7"},
				Links:      []string{"db:database"}, DriverOpts: map[string]string{"k": "v"},
			}}},
			wantExposed: nat.PortSet{"8443/tcp": {}},
		},
		"should keep a static IP on the primary network": {
			opts: []oldOpt{withNetworkMode("backend"), withNetwork("backend", static)},
			wantCreate: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				"backend": {Aliases: []string{"api"},
					IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: "10.9.0.7", IPv6Address: "fd00::7"},
					Links:      []string{"db:database"}, DriverOpts: map[string]string{"k": "v"}}}},
			wantExtra:   []extraEndpoint{{Network: "app_default", Settings: &network.EndpointSettings{Aliases: []string{"web", "app-web-1"}}}},
			wantExposed: nat.PortSet{"8443/tcp": {}},
		},
		"should find the primary network when NetworkMode holds its ID": {
			opts: []oldOpt{withNetworkMode("n2"), withNetwork("backend", static)},
			wantCreate: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				"backend": {Aliases: []string{"api"},
					IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: "10.9.0.7", IPv6Address: "fd00::7"},
					Links:      []string{"db:database"}, DriverOpts: map[string]string{"k": "v"}}}},
			wantExtra:   []extraEndpoint{{Network: "app_default", Settings: &network.EndpointSettings{Aliases: []string{"web", "app-web-1"}}}},
			wantExposed: nat.PortSet{"8443/tcp": {}},
		},
		"should use the bridge network for NetworkMode default": {
			opts: []oldOpt{withNetworkMode("default"), func(r *container.InspectResponse) {
				r.NetworkSettings.Networks = map[string]*network.EndpointSettings{"bridge": {NetworkID: "b", IPAddress: "172.17.0.2"}}
			}},
			wantCreate:  &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"bridge": {}}},
			wantExposed: nat.PortSet{"8443/tcp": {}},
		},
		"should create on its own network, not bridge, for NetworkMode default when it is not on bridge": {
			opts: []oldOpt{withNetworkMode("default")},
			wantCreate: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
				"app_default": {Aliases: []string{"web", "app-web-1"}}}},
			wantMode:    "app_default",
			wantExposed: nat.PortSet{"8443/tcp": {}},
		},
		"should connect every network afterwards when the container left its NetworkMode network": {
			opts: []oldOpt{withNetworkMode("gone"), withNetwork("backend", nil)},
			wantExtra: []extraEndpoint{
				{Network: "app_default", Settings: &network.EndpointSettings{Aliases: []string{"web", "app-web-1"}}},
				{Network: "backend", Settings: &network.EndpointSettings{}},
			},
			wantExposed: nat.PortSet{"8443/tcp": {}},
		},
		"should share the other container's namespace with network_mode container: and drop what the engine rejects": {
			opts: []oldOpt{withNetworkMode("container:vpn"), withConfig(func(c *container.Config) {
				c.Hostname, c.Domainname = "vpn-host", "example.org"
			}), func(r *container.InspectResponse) {
				r.NetworkSettings.Networks = map[string]*network.EndpointSettings{}
			}},
		},
		"should keep host networking and the hostname with network_mode host": {
			opts: []oldOpt{withNetworkMode("host"), withConfig(func(c *container.Config) { c.Hostname = "node1" }),
				func(r *container.InspectResponse) {
					r.NetworkSettings.Networks = map[string]*network.EndpointSettings{"host": {NetworkID: "h"}}
				}},
			wantHostname: "node1",
			wantExposed:  nat.PortSet{"8443/tcp": {}},
		},
		"should keep a hostname the user chose": {
			opts:         []oldOpt{withConfig(func(c *container.Config) { c.Hostname = "web-host" })},
			wantCreate:   &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{"app_default": {Aliases: []string{"web", "app-web-1"}}}},
			wantHostname: "web-host",
			wantExposed:  nat.PortSet{"8443/tcp": {}},
		},
		"should cope with no network settings at all": {
			opts:        []oldOpt{func(r *container.InspectResponse) { r.NetworkSettings = nil }},
			wantExposed: nat.PortSet{"8443/tcp": {}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			old := oldFixture(tc.opts...)
			before := deepCopy(t, old)
			spec, err := buildRecreateSpec(old, "", nil, nil)
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(spec.Networking, tc.wantCreate) {
				t.Errorf("got create endpoints %s, want %s", jsonString(spec.Networking), jsonString(tc.wantCreate))
			}
			if !reflect.DeepEqual(spec.Extra, tc.wantExtra) {
				t.Errorf("got extra endpoints %s, want %s", jsonString(spec.Extra), jsonString(tc.wantExtra))
			}
			if spec.Config.Hostname != tc.wantHostname {
				t.Errorf("got hostname %q, want %q", spec.Config.Hostname, tc.wantHostname)
			}
			if !reflect.DeepEqual(spec.Config.ExposedPorts, tc.wantExposed) {
				t.Errorf("got exposed ports %v, want %v", spec.Config.ExposedPorts, tc.wantExposed)
			}
			wantMode := cmp.Or(tc.wantMode, old.HostConfig.NetworkMode)
			if spec.HostConfig.NetworkMode != wantMode {
				t.Errorf("got network mode %q, want %q", spec.HostConfig.NetworkMode, wantMode)
			}
			if got := deepCopy(t, old); !reflect.DeepEqual(got, before) {
				t.Errorf("the inspect response was modified: got %s, want %s", jsonString(got.NetworkSettings), jsonString(before.NetworkSettings))
			}
		})
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
