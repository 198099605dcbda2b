//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

func TestRecreatePreservesDataNetworksAndLabels(t *testing.T) {
	e := recreateSetup(t)
	net1, base1 := e.network("front")
	net2, base2 := e.network("back")
	vol := e.volume("data")
	e.sweepContainers()
	token := recreateRand(6)
	name := e.prefix + "-filer-1"
	cfg, hc := e.filerSpec(token, vol)
	oldID := e.create(name, cfg, hc,
		net1, &network.EndpointSettings{Aliases: []string{"filer", "files.internal"}, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: base1 + ".10"}},
		net2, &network.EndpointSettings{Aliases: []string{"filer-back"}, IPAMConfig: &network.EndpointIPAMConfig{IPv4Address: base2 + ".20"}},
		true)
	anon := e.anonVolumes(oldID)
	WaitFor(t, 30*time.Second, func() (bool, string) {
		l := e.logs(oldID)
		return strings.Count(l, "created ") == 3, "the filer has not written its 3 markers; logs:\n" + l
	})
	old := e.inspect(oldID)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newID, err := e.dw.Recreate(ctx, oldID, map[string]string{"crank.security.observed": "tls"}, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if newID == oldID || newID == "" {
		t.Fatalf("got new ID %q, want a new container (old %q)", newID, oldID)
	}
	got := e.inspect(newID)

	t.Run("should keep the name and remove the old container", func(t *testing.T) {
		if got.Name != old.Name {
			t.Errorf("got name %q, want %q", got.Name, old.Name)
		}
		if _, err := e.cli.ContainerInspect(ctx, oldID); !cerrdefs.IsNotFound(err) {
			t.Errorf("got %v inspecting the old container, want not found", err)
		}
		if cs := e.containers(ctx); len(cs) != 1 {
			t.Errorf("got %d containers of this test, want 1: %+v", len(cs), cs)
		}
	})
	t.Run("should run the same image with the same configuration", func(t *testing.T) {
		if got.Image != old.Image || got.Config.Image != old.Config.Image {
			t.Errorf("got image %s (%s), want %s (%s)", got.Image, got.Config.Image, old.Image, old.Config.Image)
		}
		for what, pair := range map[string][2]any{
			"env":            {got.Config.Env, old.Config.Env},
			"entrypoint":     {got.Config.Entrypoint, old.Config.Entrypoint},
			"healthcheck":    {got.Config.Healthcheck, old.Config.Healthcheck},
			"stop signal":    {got.Config.StopSignal, old.Config.StopSignal},
			"restart policy": {got.HostConfig.RestartPolicy, old.HostConfig.RestartPolicy},
			"binds":          {got.HostConfig.Binds, old.HostConfig.Binds},
			"port bindings":  {got.HostConfig.PortBindings, old.HostConfig.PortBindings},
			"cap drop":       {got.HostConfig.CapDrop, old.HostConfig.CapDrop},
			"tmpfs":          {got.HostConfig.Tmpfs, old.HostConfig.Tmpfs},
			"network mode":   {got.HostConfig.NetworkMode, old.HostConfig.NetworkMode},
		} {
			if !reflect.DeepEqual(pair[0], pair[1]) {
				t.Errorf("got %s %+v, want %+v", what, pair[0], pair[1])
			}
		}
		if got.Config.Hostname != newID[:12] {
			t.Errorf("got hostname %q, want the engine's default for the new container %q", got.Config.Hostname, newID[:12])
		}
	})
	t.Run("should add the label and keep every other label, compose's included", func(t *testing.T) {
		want := maps.Clone(old.Config.Labels)
		want["crank.security.observed"] = "tls"
		if !reflect.DeepEqual(got.Config.Labels, want) {
			t.Errorf("got labels %v, want %v", got.Config.Labels, want)
		}
	})
	t.Run("should keep aliases and static IPs on every network", func(t *testing.T) {
		for netName, want := range map[string]struct {
			ip      string
			aliases []string
		}{net1: {base1 + ".10", []string{"filer", "files.internal"}}, net2: {base2 + ".20", []string{"filer-back"}}} {
			ep := got.NetworkSettings.Networks[netName]
			if ep == nil {
				t.Errorf("got no endpoint on %s, want one", netName)
				continue
			}
			if ep.IPAddress != want.ip || ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address != want.ip {
				t.Errorf("got address %q (IPAM %+v) on %s, want static %s", ep.IPAddress, ep.IPAMConfig, netName, want.ip)
			}
			for _, a := range want.aliases {
				if !slices.Contains(ep.Aliases, a) {
					t.Errorf("got aliases %v on %s, want %q among them", ep.Aliases, netName, a)
				}
			}
			if slices.Contains(ep.Aliases, oldID[:12]) {
				t.Errorf("got aliases %v on %s, want the old short ID gone", ep.Aliases, netName)
			}
		}
	})
	t.Run("should keep the data in the named and both anonymous volumes", func(t *testing.T) {
		mounts := map[string]string{}
		for _, m := range got.Mounts {
			mounts[m.Destination] = m.Name
		}
		want := map[string]string{"/named": vol, "/anon": anon["/anon"], "/imgvol": anon["/imgvol"]}
		for dst, name := range want {
			if mounts[dst] != name {
				t.Errorf("got volume %q at %s, want %q", mounts[dst], dst, name)
			}
		}
		WaitFor(t, 30*time.Second, func() (bool, string) {
			l := e.logs(newID)
			for _, dir := range []string{"/named", "/anon", "/imgvol"} {
				if !strings.Contains(l, "found "+dir+" "+token) {
					return false, "the new filer has not found its marker in " + dir + "; logs:\n" + l
				}
			}
			return true, ""
		})
	})
	t.Run("should run and become healthy", func(t *testing.T) {
		WaitFor(t, 30*time.Second, func() (bool, string) {
			s := e.inspect(newID).State
			return s.Running && s.Health != nil && s.Health.Status == container.Healthy,
				fmt.Sprintf("the new container is not running and healthy: %+v", s)
		})
	})
}

// TestRecreateRollsBackWhenTheTemporaryNameIsTaken makes the rename fail
// for real, after the old container has been stopped: it must run again,
// under its own name, with its data.
func TestRecreateRollsBackWhenTheTemporaryNameIsTaken(t *testing.T) {
	e := recreateSetup(t)
	net1, _ := e.network("net")
	vol := e.volume("data")
	e.sweepContainers()
	token := recreateRand(6)
	name := e.prefix + "-filer-1"
	cfg, hc := e.filerSpec(token, vol)
	oldID := e.create(name, cfg, hc, net1, &network.EndpointSettings{Aliases: []string{"filer"}}, "", nil, true)
	e.anonVolumes(oldID)
	WaitFor(t, 30*time.Second, func() (bool, string) {
		l := e.logs(oldID)
		return strings.Count(l, "created ") == 3, "the filer has not started (3 markers); logs:\n" + l
	})
	squatCfg, squatHC := e.filerSpec(token, vol)
	squatCfg.Volumes = nil
	squatHC.Binds = nil
	e.create(name+"-crank-old-"+oldID[:12], squatCfg, squatHC, net1, &network.EndpointSettings{}, "", nil, false)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newID, err := e.dw.Recreate(ctx, oldID, map[string]string{"crank.security.observed": "tls"}, nil, 5*time.Second)
	if !errors.Is(err, dockerwatch.ErrRolledBack) || !cerrdefs.IsConflict(err) {
		t.Fatalf("got new ID %q and error %v, want a rolled-back name conflict", newID, err)
	}
	WaitFor(t, 30*time.Second, func() (bool, string) {
		got := e.inspect(oldID)
		return got.State.Running && got.Name == "/"+name,
			fmt.Sprintf("the old container does not run again under its name: name %s, state %+v", got.Name, got.State)
	})
	if got := e.inspect(oldID).Config.Labels["crank.security.observed"]; got != "" {
		t.Errorf("got label %q on the old container, want it untouched", got)
	}
	if cs := e.containers(ctx); len(cs) != 2 {
		t.Errorf("got %d containers, want the old one and the squatter: %+v", len(cs), cs)
	}
}

// TestRecreateRollsBackWhenCreateFails makes the create fail for real: the
// old container, not running, bind-mounts a host directory that has been
// removed since (the engine checks bind sources at create only). The old
// container must get its name back, not be started, and keep every volume.
func TestRecreateRollsBackWhenCreateFails(t *testing.T) {
	e := recreateSetup(t)
	net1, _ := e.network("front")
	vol := e.volume("data")
	e.sweepContainers()
	src := filepath.Join(t.TempDir(), "gone")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	name := e.prefix + "-filer-1"
	cfg, hc := e.filerSpec(recreateRand(6), vol)
	hc.Mounts = []mount.Mount{{Type: mount.TypeBind, Source: src, Target: "/host"}}
	oldID := e.create(name, cfg, hc, net1, &network.EndpointSettings{Aliases: []string{"a"}}, "", nil, false)
	e.anonVolumes(oldID)
	if err := os.Remove(src); err != nil {
		t.Fatal(err)
	}
	var vols []string
	for _, m := range e.inspect(oldID).Mounts {
		if m.Type == mount.TypeVolume {
			vols = append(vols, m.Name)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	_, err := e.dw.Recreate(ctx, oldID, map[string]string{"crank.security.observed": "tls"}, nil, 5*time.Second)
	if !errors.Is(err, dockerwatch.ErrRolledBack) || !strings.Contains(err.Error(), "creating the new container") {
		t.Fatalf("got error %v, want a rolled-back create failure", err)
	}
	got := e.inspect(oldID)
	if got.Name != "/"+name || got.State.Running {
		t.Errorf("got name %q running=%v, want %q and still not running", got.Name, got.State.Running, "/"+name)
	}
	if _, ok := got.Config.Labels["crank.security.observed"]; ok {
		t.Errorf("got labels %v on the old container, want them untouched", got.Config.Labels)
	}
	if cs := e.containers(ctx); len(cs) != 1 || cs[0].ID != oldID {
		t.Errorf("got containers %+v, want only the old one", cs)
	}
	if len(vols) != 3 {
		t.Errorf("got volumes %v, want three (named, /anon, /imgvol)", vols)
	}
	for _, v := range vols {
		if _, err := e.cli.VolumeInspect(ctx, v); err != nil {
			t.Errorf("got %v inspecting volume %s, want it still there: no volume may be removed", err, v)
		}
	}
}

// TestRecreateLeavesAStoppedContainerStopped recreates a container that
// was never started, whose second network has been removed meanwhile (the
// engine accepts that until start): the new one must not be started either,
// and keep the stale network in its configuration like the old one had.
func TestRecreateLeavesAStoppedContainerStopped(t *testing.T) {
	e := recreateSetup(t)
	net1, _ := e.network("front")
	net2, _ := e.network("back")
	vol := e.volume("data")
	e.sweepContainers()
	cfg, hc := e.filerSpec(recreateRand(6), vol)
	oldID := e.create(e.prefix+"-filer-1", cfg, hc, net1, &network.EndpointSettings{Aliases: []string{"a"}},
		net2, &network.EndpointSettings{Aliases: []string{"b"}}, false)
	e.anonVolumes(oldID)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.cli.NetworkRemove(ctx, net2); err != nil {
		t.Fatalf("removing network %s: %v", net2, err)
	}
	newID, err := e.dw.Recreate(ctx, oldID, map[string]string{"crank.security.observed": "tls"}, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	got := e.inspect(newID)
	if got.State.Status != "created" {
		t.Errorf("got state %q, want created (never started)", got.State.Status)
	}
	for _, n := range []string{net1, net2} {
		if _, ok := got.NetworkSettings.Networks[n]; !ok {
			t.Errorf("got networks %v, want %s among them", slices.Collect(maps.Keys(got.NetworkSettings.Networks)), n)
		}
	}
	if got.Config.Labels["crank.security.observed"] != "tls" {
		t.Errorf("got labels %v, want crank.security.observed=tls", got.Config.Labels)
	}
}

// TestRecreateKeepsTheImageWhenTheTagMoved retags the container's image
// reference to another image before recreating: the new container must run
// the old image, not silently upgrade.
func TestRecreateKeepsTheImageWhenTheTagMoved(t *testing.T) {
	e := recreateSetup(t)
	net1, _ := e.network("net")
	vol := e.volume("data")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tag := "crank-e2e-recreate:pin-" + e.prefix[len(e.prefix)-8:]
	if err := e.cli.ImageTag(ctx, recreateImage, tag); err != nil {
		t.Fatalf("tagging %s: %v", tag, err)
	}
	// Registered before the sweep, so it runs after the containers are gone.
	t.Cleanup(func() {
		ctx, cancel := recreateCtx()
		defer cancel()
		if _, err := e.cli.ImageRemove(ctx, tag, image.RemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("removing %s: %v", tag, err)
		}
	})
	e.sweepContainers()
	cfg, hc := e.filerSpec(recreateRand(6), vol)
	cfg.Image = tag
	oldID := e.create(e.prefix+"-filer-1", cfg, hc, net1, &network.EndpointSettings{}, "", nil, true)
	e.anonVolumes(oldID)
	old := e.inspect(oldID)
	// Another image under the same tag: the same content plus a label.
	moved := exec.CommandContext(ctx, "docker", "build", "-q", "-t", tag, "-")
	moved.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	moved.Stdin = strings.NewReader("FROM " + recreateImage + "\nLABEL crank.e2e=1 crank.e2e.variant=moved\n")
	if out, err := moved.CombinedOutput(); err != nil {
		t.Fatalf("building the moved image: %v\n%s", err, out)
	}

	newID, err := e.dw.Recreate(ctx, oldID, nil, nil, 5*time.Second)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	got := e.inspect(newID)
	if got.Image != old.Image {
		t.Errorf("got image %s, want the old container's %s", got.Image, old.Image)
	}
	if got.Config.Image != old.Image {
		t.Errorf("got Config.Image %q, want the old image ID %q (the tag names another image now)", got.Config.Image, old.Image)
	}
	if !got.State.Running {
		t.Errorf("got state %+v, want running", got.State)
	}
}
