//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/go-connections/nat"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

const (
	recreateImage = "crank-e2e-recreate:test"
	recreateCall  = 30 * time.Second
)

// recreateEnv is one test's engine connection and the prefix and labels of
// everything it creates; all of it is removed in t.Cleanup.
type recreateEnv struct {
	t      *testing.T
	dw     *dockerwatch.Client
	cli    *client.Client
	prefix string // unique resource-name prefix
	labels map[string]string
	anon   []string // anonymous volumes to remove after the containers
}

// recreateSetup connects to the local engine (failing under CI=true, else
// skipping, when there is none) and builds the filer image once.
func recreateSetup(t *testing.T) *recreateEnv {
	t.Helper()
	dw, err := dockerwatch.New("")
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = dw.Ping(ctx)
		cancel()
	}
	if err != nil {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatalf("CI=true and the docker engine is unreachable: %v", err)
		}
		t.Skipf("docker engine unreachable (%v); start dockerd or set DOCKER_HOST to run this test", err)
	}
	t.Cleanup(func() { dw.Close() })
	recreateBuildOnce.Do(func() { recreateBuildErr = recreateBuild() })
	if recreateBuildErr != nil {
		t.Fatalf("building %s: %v", recreateImage, recreateBuildErr)
	}
	host, _ := os.Hostname()
	e := &recreateEnv{t: t, dw: dw, cli: dw.SDK(), prefix: "crank-e2e-recreate-" + recreateRand(4)}
	// The owner labels make the harness treat these as ours while this
	// process lives, and as leftovers to sweep once it is gone.
	e.labels = map[string]string{"crank.e2e": "1", "crank.e2e.scope": e.prefix,
		"crank.e2e.owner": fmt.Sprintf("%s/%d", host, os.Getpid()), "crank.e2e.started": strconv.FormatInt(time.Now().Unix(), 10)}
	return e
}

var (
	recreateBuildOnce sync.Once
	recreateBuildErr  error
)

// recreateBuild compiles the filer statically and wraps it in a FROM
// scratch image with an image VOLUME, using the legacy builder (no
// registry, no BuildKit needed).
func recreateBuild() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "crank-e2e-recreate-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(dir, "filer"), "./e2e/testdata/filer")
	build.Dir = ".."
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %w\n%s", err, out)
	}
	df := "FROM scratch\nCOPY filer /filer\nVOLUME /imgvol\nENTRYPOINT [\"/filer\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", "build", "-q", "-t", recreateImage, "--label", "crank.e2e=1", dir)
	cmd.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker build: %w\n%s", err, out)
	}
	return nil
}

func recreateRand(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func recreateCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), recreateCall)
}

// network creates a labelled bridge network with a free /24 and returns its
// name and the subnet's first three octets ("10.231.7").
func (e *recreateEnv) network(suffix string) (string, string) {
	e.t.Helper()
	ctx, cancel := recreateCtx()
	defer cancel()
	name := e.prefix + "-" + suffix
	var lastErr error
	for range 10 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		base := fmt.Sprintf("10.%d.%d", 200+int(b[0])%50, b[1])
		_, err := e.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: e.labels,
			IPAM: &network.IPAM{Config: []network.IPAMConfig{{Subnet: base + ".0/24"}}}})
		if err == nil {
			e.t.Cleanup(func() {
				ctx, cancel := recreateCtx()
				defer cancel()
				if err := e.cli.NetworkRemove(ctx, name); err != nil && !cerrdefs.IsNotFound(err) {
					e.t.Errorf("removing network %s: %v", name, err)
				}
			})
			return name, base
		}
		lastErr = err // most likely an overlapping subnet: try another
	}
	e.t.Fatalf("creating network %s: %v", name, lastErr)
	return "", ""
}

// volume creates a labelled named volume.
func (e *recreateEnv) volume(suffix string) string {
	e.t.Helper()
	ctx, cancel := recreateCtx()
	defer cancel()
	name := e.prefix + "-" + suffix
	if _, err := e.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: e.labels}); err != nil {
		e.t.Fatalf("creating volume %s: %v", name, err)
	}
	e.removeVolumeLater(name)
	return name
}

// removeVolumeLater removes a named volume at cleanup. Registered before
// sweepContainers, it runs after it.
func (e *recreateEnv) removeVolumeLater(name string) {
	e.t.Cleanup(func() {
		ctx, cancel := recreateCtx()
		defer cancel()
		if err := e.cli.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
			e.t.Errorf("removing volume %s: %v", name, err)
		}
	})
}

// sweepContainers removes, at cleanup, every container of this test: the
// recreated one has a new ID, so the sweep goes by label.
func (e *recreateEnv) sweepContainers() {
	e.t.Cleanup(func() {
		ctx, cancel := recreateCtx()
		defer cancel()
		for _, c := range e.containers(ctx) {
			// RemoveVolumes takes the anonymous volumes of containers that
			// were never recreated; recreated ones mount theirs by name, so
			// those (recorded by anonVolumes) are removed below.
			if err := e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
				e.t.Errorf("removing container %s: %v", c.ID, err)
			}
		}
		for _, v := range e.anon {
			if err := e.cli.VolumeRemove(ctx, v, false); err != nil && !cerrdefs.IsNotFound(err) {
				e.t.Errorf("removing volume %s: %v", v, err)
			}
		}
	})
}

func (e *recreateEnv) containers(ctx context.Context) []container.Summary {
	e.t.Helper()
	cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "crank.e2e.scope="+e.prefix))})
	if err != nil {
		e.t.Fatalf("listing containers: %v", err)
	}
	return cs
}

// filerSpec is the service under test: compose labels, restart policy,
// healthcheck, a published port, the named volume at /named, an anonymous
// volume at /anon (Config.Volumes) and one at /imgvol (image VOLUME).
func (e *recreateEnv) filerSpec(token, vol string) (*container.Config, *container.HostConfig) {
	labels := map[string]string{
		"com.docker.compose.project": e.prefix, "com.docker.compose.service": "filer",
		"com.docker.compose.config-hash": "c0ffee" + token, "com.docker.compose.container-number": "1",
		"com.docker.compose.oneoff": "False", "com.docker.compose.version": "2.29.7",
	}
	for k, v := range e.labels {
		labels[k] = v
	}
	cfg := &container.Config{
		Image:        recreateImage,
		Env:          []string{"FILER_DIRS=/named,/anon,/imgvol", "FILER_TOKEN=" + token},
		Labels:       labels,
		Volumes:      map[string]struct{}{"/anon": {}},
		ExposedPorts: nat.PortSet{"8080/tcp": {}},
		StopSignal:   "SIGINT",
		Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/filer", "health"},
			Interval: time.Second, Timeout: 3 * time.Second, Retries: 3},
	}
	hc := &container.HostConfig{
		Binds:         []string{vol + ":/named"},
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
		PortBindings:  nat.PortMap{"8080/tcp": {{HostIP: "127.0.0.1"}}},
		CapDrop:       []string{"CAP_MKNOD"},
		Tmpfs:         map[string]string{"/scratch": "size=1m"},
	}
	return cfg, hc
}

// create creates (and optionally starts) a container on net1 (NetworkMode)
// with endpoint ep1, then connects net2 with ep2 when given.
func (e *recreateEnv) create(name string, cfg *container.Config, hc *container.HostConfig, net1 string, ep1 *network.EndpointSettings, net2 string, ep2 *network.EndpointSettings, start bool) string {
	e.t.Helper()
	ctx, cancel := recreateCtx()
	defer cancel()
	hc.NetworkMode = container.NetworkMode(net1)
	resp, err := e.cli.ContainerCreate(ctx, cfg, hc,
		&network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{net1: ep1}}, nil, name)
	if err != nil {
		e.t.Fatalf("creating %s: %v", name, err)
	}
	if net2 != "" {
		if err := e.cli.NetworkConnect(ctx, net2, resp.ID, ep2); err != nil {
			e.t.Fatalf("connecting %s to %s: %v", name, net2, err)
		}
	}
	if start {
		if err := e.cli.ContainerStart(ctx, resp.ID, container.StartOptions{}); err != nil {
			e.t.Fatalf("starting %s: %v", name, err)
		}
	}
	return resp.ID
}

func (e *recreateEnv) inspect(id string) container.InspectResponse {
	e.t.Helper()
	ctx, cancel := recreateCtx()
	defer cancel()
	resp, err := e.cli.ContainerInspect(ctx, id)
	if err != nil {
		e.t.Fatalf("inspecting %s: %v", id, err)
	}
	return resp
}

func (e *recreateEnv) logs(id string) string {
	e.t.Helper()
	ctx, cancel := recreateCtx()
	defer cancel()
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		e.t.Fatalf("logs of %s: %v", id, err)
	}
	defer rc.Close()
	// The stream carries stdcopy frame headers; they don't disturb Contains.
	b, err := io.ReadAll(rc)
	if err != nil {
		e.t.Fatalf("reading logs of %s: %v", id, err)
	}
	return string(b)
}

// anonVolumes returns the volume names mounted at /anon and /imgvol, and
// has the container sweep remove them.
func (e *recreateEnv) anonVolumes(id string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, m := range e.inspect(id).Mounts {
		if m.Destination == "/anon" || m.Destination == "/imgvol" {
			out[m.Destination] = m.Name
			e.anon = append(e.anon, m.Name)
		}
	}
	if len(out) != 2 {
		e.t.Fatalf("got anonymous volumes %v, want one at /anon and one at /imgvol", out)
	}
	return out
}
