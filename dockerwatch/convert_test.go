package dockerwatch

import (
	"reflect"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

type inspectOpt func(*container.InspectResponse)

// inspectFixture is a plain running container that compose did not create.
func inspectFixture(opts ...inspectOpt) container.InspectResponse {
	r := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:      testID,
			Name:    "/web",
			Image:   "sha256:abc",
			Created: "2026-11-29T11:00:00.5Z",
			State: &container.State{
				Status:     container.StateRunning,
				StartedAt:  "2026-11-29T12:00:00.123456789Z",
				FinishedAt: "0001-01-01T00:00:00Z",
			},
			HostConfig: &container.HostConfig{NetworkMode: "bridge"},
		},
		Config: &container.Config{
			Image:    "nginx:1.27",
			Hostname: testID[:12],
		},
		NetworkSettings: &container.NetworkSettings{},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

// wantFixture is what inspectFixture() converts to.
func wantFixture(edits ...func(*Container)) Container {
	c := Container{
		ID:          testID,
		Name:        "web",
		Service:     "web",
		Image:       "nginx:1.27",
		ImageID:     "sha256:abc",
		Hostname:    testID[:12],
		State:       StateRunning,
		Created:     time.Date(2026, 11, 29, 11, 0, 0, 5e8, time.UTC),
		StartedAt:   time.Date(2026, 11, 29, 12, 0, 0, 123456789, time.UTC),
		NetworkMode: "bridge",
	}
	for _, e := range edits {
		e(&c)
	}
	return c
}

func TestFromInspect(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		in container.InspectResponse
		// want is the whole converted Container.
		want Container
	}{
		"should convert a plain container, Service falling back to the name without its slash": {
			in:   inspectFixture(),
			want: wantFixture(),
		},
		"should take Project and Service from the compose labels": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.Name = "/shop-api-1"
				r.Config.Labels = map[string]string{LabelComposeProject: "shop", LabelComposeService: "api"}
			}),
			want: wantFixture(func(c *Container) {
				c.Name, c.Project, c.Service = "shop-api-1", "shop", "api"
				c.Labels = map[string]string{LabelComposeProject: "shop", LabelComposeService: "api"}
			}),
		},
		"should split Env at the first equals sign and keep keys without a value": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.Config.Env = []string{"A=1", "DSN=postgres://u:p@db/x?sslmode=verify-full&a=b", "EMPTY=", "BARE"}
			}),
			want: wantFixture(func(c *Container) {
				c.Env = map[string]string{"A": "1", "DSN": "postgres://u:p@db/x?sslmode=verify-full&a=b", "EMPTY": "", "BARE": ""}
			}),
		},
		"should keep networks with IPs and aliases, dropping the short-ID alias old engines add": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.NetworkSettings.Networks = map[string]*network.EndpointSettings{
					"shop_default": {
						NetworkID: "n1", IPAddress: "172.18.0.5", GlobalIPv6Address: "fd00::5",
						Aliases: []string{"api", "shop-api-1", testID[:12]},
					},
					"backend": {NetworkID: "n2", IPAddress: "10.0.0.9"},
					"broken":  nil,
				}
			}),
			want: wantFixture(func(c *Container) {
				c.Networks = map[string]Network{
					"shop_default": {NetworkID: "n1", IPAddress: "172.18.0.5", IPv6: "fd00::5", Aliases: []string{"api", "shop-api-1"}},
					"backend":      {NetworkID: "n2", IPAddress: "10.0.0.9"},
					"broken":       {},
				}
			}),
		},
		"should keep every mount, anonymous volumes by their generated name": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.Mounts = []container.MountPoint{
					{Type: mount.TypeVolume, Name: "shop_certs", Source: "/var/lib/docker/volumes/shop_certs/_data", Destination: "/certs", RW: false},
					{Type: mount.TypeVolume, Name: "3f1e9b0c", Source: "/var/lib/docker/volumes/3f1e9b0c/_data", Destination: "/data", RW: true},
					{Type: mount.TypeBind, Source: "/srv/conf", Destination: "/etc/app", RW: true},
					{Type: mount.TypeTmpfs, Destination: "/tmp", RW: true},
				}
			}),
			want: wantFixture(func(c *Container) {
				c.Mounts = []Mount{
					{Type: "volume", Name: "shop_certs", Source: "/var/lib/docker/volumes/shop_certs/_data", Destination: "/certs"},
					{Type: "volume", Name: "3f1e9b0c", Source: "/var/lib/docker/volumes/3f1e9b0c/_data", Destination: "/data", RW: true},
					{Type: "bind", Source: "/srv/conf", Destination: "/etc/app", RW: true},
					{Type: "tmpfs", Destination: "/tmp", RW: true},
				}
			}),
		},
		"should parse exposed ports sorted, defaulting a bare port to tcp and skipping junk": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.Config.ExposedPorts = nat.PortSet{"8443/tcp": {}, "53/udp": {}, "53/tcp": {}, "80": {}, "x/tcp": {}, "70000/tcp": {}}
			}),
			want: wantFixture(func(c *Container) {
				c.ExposedPorts = []Port{{53, "tcp"}, {53, "udp"}, {80, "tcp"}, {8443, "tcp"}}
			}),
		},
		"should parse a stopped container's times, exit code and restart count": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.State.Status = container.StateExited
				r.State.ExitCode = 137
				r.State.FinishedAt = "2026-11-29T12:30:00Z"
				r.RestartCount = 3
			}),
			want: wantFixture(func(c *Container) {
				c.State, c.ExitCode, c.RestartCount = StateExited, 137, 3
				c.FinishedAt = time.Date(2026, 11, 29, 12, 30, 0, 0, time.UTC)
			}),
		},
		"should treat a never-started container's zero timestamps as zero times": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.State.Status = container.StateCreated
				r.State.StartedAt = "0001-01-01T00:00:00Z"
			}),
			want: wantFixture(func(c *Container) { c.State, c.StartedAt = StateCreated, time.Time{} }),
		},
		"should treat unparseable timestamps as zero rather than failing": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.Created = "yesterday"
				r.State.StartedAt = ""
			}),
			want: wantFixture(func(c *Container) { c.Created, c.StartedAt = time.Time{}, time.Time{} }),
		},
		"should report health status and the healthcheck start period": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.State.Health = &container.Health{Status: container.Starting}
				r.Config.Healthcheck = &container.HealthConfig{Test: []string{"CMD", "true"}, StartPeriod: 40 * time.Second}
			}),
			want: wantFixture(func(c *Container) { c.Health, c.HealthStartPeriod = "starting", 40*time.Second }),
		},
		"should report no health for the engine's none status": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.State.Health = &container.Health{Status: container.NoHealthcheck}
			}),
			want: wantFixture(),
		},
		"should keep restart policy, network mode, user and image reference": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.HostConfig.RestartPolicy = container.RestartPolicy{Name: container.RestartPolicyUnlessStopped}
				r.HostConfig.NetworkMode = "container:" + testID
				r.Config.User = "1000:1000"
			}),
			want: wantFixture(func(c *Container) {
				c.RestartPolicy, c.NetworkMode, c.User = "unless-stopped", "container:"+testID, "1000:1000"
			}),
		},
		"should fall back to the image ID when Config has no image": {
			in:   inspectFixture(func(r *container.InspectResponse) { r.Config.Image = "" }),
			want: wantFixture(func(c *Container) { c.Image = "sha256:abc" }),
		},
		"should survive State, Config, HostConfig and NetworkSettings all being nil": {
			in: inspectFixture(func(r *container.InspectResponse) {
				r.State, r.HostConfig, r.Config, r.NetworkSettings = nil, nil, nil, nil
			}),
			want: Container{ID: testID, Name: "web", Service: "web", Image: "sha256:abc", ImageID: "sha256:abc",
				Created: time.Date(2026, 11, 29, 11, 0, 0, 5e8, time.UTC)},
		},
		"should survive an entirely empty response": {
			in:   container.InspectResponse{},
			want: Container{},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := FromInspect(tc.in)
			diffContainers(t, got, tc.want)
		})
	}
}

func TestFromInspectDoesNotAliasTheInputLabels(t *testing.T) {
	t.Parallel()
	in := inspectFixture(func(r *container.InspectResponse) { r.Config.Labels = map[string]string{"a": "1"} })
	got := FromInspect(in)
	got.Labels["a"] = "changed"
	if v := in.Config.Labels["a"]; v != "1" {
		t.Errorf("got input label %q after editing the output, want %q", v, "1")
	}
}

// diffContainers reports each differing field as "got X, want Y".
func diffContainers(t *testing.T, got, want Container) {
	t.Helper()
	gv, wv := reflect.ValueOf(got), reflect.ValueOf(want)
	for i := range gv.NumField() {
		g, w := gv.Field(i).Interface(), wv.Field(i).Interface()
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s: got %#v, want %#v", gv.Type().Field(i).Name, g, w)
		}
	}
}
