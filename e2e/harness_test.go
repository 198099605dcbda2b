//go:build e2e

package e2e

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
)

// Labels on everything the harness creates.
const (
	LabelE2E     = "crank.e2e"         // "1": made by this harness
	LabelRun     = "crank.e2e.run"     // run id (one go test process)
	LabelScope   = "crank.e2e.scope"   // one test; also its compose project
	LabelRole    = "crank.e2e.role"    // controller | service | helper | network | volume
	labelOwner   = "crank.e2e.owner"   // <hostname>/<pid> of the test process
	labelStarted = "crank.e2e.started" // unix seconds when the run started

	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"

	ControllerImageName = "crank-mtls-controller:e2e"
	ServiceImageName    = "crank-testservice:e2e"

	// staleAfter: a leftover whose owner can't be checked (another host) is
	// removed only when its run is older than any sane test run.
	staleAfter  = 2 * time.Hour
	dockerCall  = 30 * time.Second
	buildBudget = 5 * time.Minute
)

var shared *Harness

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	h, err := newHarness()
	if err != nil {
		if ci {
			fmt.Fprintf(os.Stderr, "e2e: FAIL: CI=true and the docker engine is unusable, refusing to skip: %v\n", err)
			return 1
		}
		fmt.Fprintf(os.Stderr, "e2e: SKIP: docker engine unusable (%v); start dockerd or set DOCKER_HOST to run the e2e tests\n", err)
		return 0
	}
	defer h.close()
	if err := h.removeLeftovers(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: removing leftovers of earlier runs: %v\n", err)
	}
	shared = h
	code := m.Run()
	// Safety net: every test sweeps its own scope; this catches the rest.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h.removeByLabel(ctx, LabelRun+"="+h.RunID); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: final cleanup of run %s: %v\n", h.RunID, err)
	}
	return code
}

// Harness is shared by all tests in one run. Get it with H(t).
type Harness struct {
	Docker  *client.Client // SDK client, API version negotiated
	RunID   string
	started time.Time
	owner   string
	root    string // module root
	tmp     string // build contexts

	ctrlOnce, svcOnce   sync.Once
	ctrlImage, svcImage string // image IDs, immune to concurrent re-tagging
	ctrlErr, svcErr     error

	mu      sync.Mutex
	subnets []*net.IPNet        // of networks this run created; the only HTTP targets
	scopes  map[testing.TB]bool // tests whose sweep is registered
	seq     int
}

// H returns the run's harness; TestMain must have set it up.
func H(t testing.TB) *Harness {
	t.Helper()
	if shared == nil {
		t.Fatal("e2e harness not initialised: TestMain did not run")
	}
	return shared
}

func newHarness() (*Harness, error) {
	if _, err := exec.LookPath("docker"); err != nil {
		return nil, fmt.Errorf("docker CLI (needed for image builds): %w", err)
	}
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("creating docker client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return nil, fmt.Errorf("pinging docker engine: %w", err)
	}
	root, err := filepath.Abs("..")
	if err == nil {
		_, err = os.Stat(filepath.Join(root, "go.mod"))
	}
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("finding the module root: %w", err)
	}
	tmp, err := os.MkdirTemp("", "crank-e2e-")
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("creating temp dir: %w", err)
	}
	host, _ := os.Hostname()
	now := time.Now()
	return &Harness{
		Docker: cli, RunID: fmt.Sprintf("%s-%s", now.UTC().Format("0102t150405"), randHex(3)),
		started: now, owner: fmt.Sprintf("%s/%d", host, os.Getpid()), root: root, tmp: tmp,
		scopes: map[testing.TB]bool{},
	}, nil
}

func (h *Harness) close() {
	os.RemoveAll(h.tmp)
	h.Docker.Close()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ServiceImage builds (once per run) and returns the testservice image ID.
func (h *Harness) ServiceImage(t testing.TB) string {
	t.Helper()
	h.svcOnce.Do(func() {
		h.svcImage, h.svcErr = h.buildImage("testservice", "deploy/testservice.Dockerfile", ServiceImageName)
	})
	if h.svcErr != nil {
		t.Fatalf("building the testservice image: %v", h.svcErr)
	}
	return h.svcImage
}

// ControllerImage builds (once per run) and returns the controller image ID.
func (h *Harness) ControllerImage(t testing.TB) string {
	t.Helper()
	h.ctrlOnce.Do(func() {
		h.ctrlImage, h.ctrlErr = h.buildImage("controller", "deploy/Dockerfile", ControllerImageName)
	})
	if h.ctrlErr != nil {
		t.Fatalf("building the controller image: %v", h.ctrlErr)
	}
	return h.ctrlImage
}

// buildImage compiles ./cmd/<bin> statically into a fresh context dir and
// wraps it with the Dockerfile (legacy builder or BuildKit: both work with
// FROM scratch and no registry). Containers use the returned ID, so a
// concurrent run re-tagging the shared tag cannot swap our image.
func (h *Harness) buildImage(bin, dockerfile, tag string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildBudget)
	defer cancel()
	ctxDir, err := os.MkdirTemp(h.tmp, bin+"-")
	if err != nil {
		return "", err
	}
	gobuild := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", filepath.Join(ctxDir, bin), "./cmd/"+bin)
	gobuild.Dir = h.root
	gobuild.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if out, err := gobuild.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/%s: %w\n%s", bin, err, out)
	}
	df, err := os.ReadFile(filepath.Join(h.root, dockerfile))
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), df, 0o644); err != nil {
		return "", err
	}
	iid := filepath.Join(h.tmp, bin+".iid")
	build := exec.CommandContext(ctx, "docker", "build", "--iidfile", iid, "-t", tag,
		"--label", LabelE2E+"=1", "--label", LabelRun+"="+h.RunID,
		"--label", labelOwner+"="+h.owner, "--label", labelStarted+"="+strconv.FormatInt(h.started.Unix(), 10),
		ctxDir)
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker build -f %s: %w\n%s", dockerfile, err, out)
	}
	id, err := os.ReadFile(iid)
	if err != nil {
		return "", fmt.Errorf("reading image id: %w", err)
	}
	return strings.TrimSpace(string(id)), nil
}

// Project is the test's scope: its compose project name and the value of
// LabelScope on everything created for it. Deterministic per test, so
// RunService and StartController in one test agree, and parallel tests
// (each with its own controller) never manage each other's containers.
// A subtest is its own scope: its resources go when it ends, and it joins
// the parent's project only with WithProject(h.Project(parent)).
func (h *Harness) Project(t testing.TB) string {
	t.Helper()
	sum := sha256.Sum256([]byte(t.Name()))
	scope := "e2e-" + h.RunID + "-" + hex.EncodeToString(sum[:3])
	h.mu.Lock()
	registered := h.scopes[t] // per t, not per name: -count=2 reruns a name
	h.scopes[t] = true
	h.mu.Unlock()
	if !registered {
		// Registered before anything of this test exists, so it runs after
		// every later cleanup; it removes what the test made even on failure.
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := h.removeByLabel(ctx, LabelScope+"="+scope); err != nil {
				t.Errorf("cleanup of %s: %v", scope, err)
			}
		})
	}
	return scope
}

func (h *Harness) labels(t testing.TB, role string) map[string]string {
	return map[string]string{
		LabelE2E: "1", LabelRun: h.RunID, LabelScope: h.Project(t), LabelRole: role,
		labelOwner: h.owner, labelStarted: strconv.FormatInt(h.started.Unix(), 10),
	}
}

func (h *Harness) nextName(t testing.TB, kind string) string {
	project := h.Project(t) // takes h.mu itself
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	return fmt.Sprintf("%s-%s%d", project, kind, h.seq)
}

// NewNetwork creates a bridge network for the test and returns its name.
// Its subnet becomes a permitted target of the HTTP helpers.
func (h *Harness) NewNetwork(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	name := h.nextName(t, "net")
	if _, err := h.Docker.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: h.labels(t, "network")}); err != nil {
		t.Fatalf("creating network %s: %v", name, err)
	}
	ins, err := h.Docker.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil {
		t.Fatalf("inspecting network %s: %v", name, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range ins.IPAM.Config {
		if _, n, err := net.ParseCIDR(c.Subnet); err == nil {
			h.subnets = append(h.subnets, n)
		}
	}
	return name
}

// NewVolume creates a named volume for the test and returns its name.
func (h *Harness) NewVolume(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	name := h.nextName(t, "vol")
	if _, err := h.Docker.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: h.labels(t, "volume")}); err != nil {
		t.Fatalf("creating volume %s: %v", name, err)
	}
	return name
}

// Logs returns a container's stdout and stderr, interleaved.
func (h *Harness) Logs(t testing.TB, id string) string {
	t.Helper()
	all, _, err := h.logs(id)
	if err != nil {
		t.Fatalf("logs of %s: %v", id, err)
	}
	return all
}

// logs returns all output, and stdout alone.
func (h *Harness) logs(id string) (all, stdout string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	rc, err := h.Docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	var both, so bytes.Buffer
	_, err = stdcopy.StdCopy(io.MultiWriter(&both, &so), &both, rc)
	return both.String(), so.String(), err
}

// Inspect returns the container's current state.
func (h *Harness) Inspect(t testing.TB, id string) container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	resp, err := h.Docker.ContainerInspect(ctx, id)
	if err != nil {
		t.Fatalf("inspecting %s: %v", id, err)
	}
	return resp
}

// IP returns the container's address on network, failing if it has none.
func (h *Harness) IP(t testing.TB, id, networkName string) string {
	t.Helper()
	resp := h.Inspect(t, id)
	if ep, ok := resp.NetworkSettings.Networks[networkName]; ok && ep.IPAddress != "" {
		return ep.IPAddress
	}
	t.Fatalf("container %s has no address on network %s", id, networkName)
	return ""
}

// WaitFor is the one way e2e tests wait: it polls cond until it reports
// true and returns how long that took. cond's status says what is still
// missing; when timeout passes, the test fails with the last status. Polls
// start 5ms apart and back off to 500ms, so a quick condition is seen
// within milliseconds (the returned time is a fair measure) and a long wait
// costs few calls. Use it instead of sleeping, also before asserting that
// something did not happen: wait for evidence that it would have happened
// by now.
func WaitFor(t testing.TB, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	interval := 5 * time.Millisecond
	for checks := 1; ; checks++ {
		ok, status := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s (%d checks); last status: %s", timeout, checks, status)
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("test ended after %s of waiting; last status: %s", time.Since(start).Round(time.Millisecond), status)
		case <-time.After(interval):
		}
		interval = min(interval*2, 500*time.Millisecond)
	}
}

// HTTPResult is one response fetched by HTTPGet.
type HTTPResult struct {
	Status int
	Body   []byte
	TLS    *tls.ConnectionState // nil over plain HTTP
}

// ServerCertSHA256 is the hex SHA-256 of the served leaf ("" over HTTP).
func (r *HTTPResult) ServerCertSHA256() string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// HTTPGet fetches url (http or https by IP) from the host. It dials only
// addresses on networks this run created, never follows redirects, never
// reuses connections (each call is a fresh handshake) and caps the body at
// 1 MiB. tlsCfg may be nil for plain HTTP; set its ServerName when the URL
// host is an IP. Errors are returned, not fatal, so it fits inside WaitFor.
func (h *Harness) HTTPGet(ctx context.Context, url string, tlsCfg *tls.Config) (*HTTPResult, error) {
	tr := &http.Transport{DialContext: h.dialTestNetwork, TLSClientConfig: tlsCfg, DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading body of %s: %w", url, err)
	}
	return &HTTPResult{Status: resp.StatusCode, Body: body, TLS: resp.TLS}, nil
}

func (h *Harness) dialTestNetwork(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	h.mu.Lock()
	allowed := false
	for _, n := range h.subnets {
		allowed = allowed || (ip != nil && n.Contains(ip))
	}
	h.mu.Unlock()
	if !allowed {
		return nil, fmt.Errorf("refusing to dial %s: the e2e harness only talks to container IPs on networks this run created", addr)
	}
	return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
}

// WriteVolumeFile writes data to path (relative) inside volume, creating
// parent dirs, by running `testservice write` in a throwaway container.
func (h *Harness) WriteVolumeFile(t testing.TB, vol, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if len(data) > 64<<10 {
		t.Fatalf("WriteVolumeFile: %d bytes is too big for a command-line argument; keep it under 64 KiB", len(data))
	}
	cmd := []string{"write", volPath(t, path), fmt.Sprintf("%#o", perm.Perm()), base64.StdEncoding.EncodeToString(data)}
	if _, err := h.runHelper(t, vol, false, cmd); err != nil {
		t.Fatalf("writing %s in volume %s: %v", path, vol, err)
	}
}

// ReadVolumeFile returns the file at path (relative) inside volume.
func (h *Harness) ReadVolumeFile(t testing.TB, vol, path string) []byte {
	t.Helper()
	data, err := h.TryReadVolumeFile(t, vol, path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TryReadVolumeFile is ReadVolumeFile returning the error, for WaitFor
// conditions (the file may not exist yet).
func (h *Harness) TryReadVolumeFile(t testing.TB, vol, path string) ([]byte, error) {
	t.Helper()
	out, err := h.runHelper(t, vol, true, []string{"cat", volPath(t, path)})
	if err != nil {
		return nil, fmt.Errorf("reading %s in volume %s: %w", path, vol, err)
	}
	return []byte(out), nil
}

func volPath(t testing.TB, path string) string {
	t.Helper()
	if !filepath.IsLocal(path) {
		t.Fatalf("volume path %q must be relative and stay inside the volume", path)
	}
	return "/v/" + filepath.ToSlash(path)
}

// runHelper runs the testservice image with vol at /v and returns stdout;
// a non-zero exit is an error carrying the output.
func (h *Harness) runHelper(t testing.TB, vol string, readOnly bool, cmd []string) (string, error) {
	t.Helper()
	img := h.ServiceImage(t)
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	created, err := h.Docker.ContainerCreate(ctx,
		&container.Config{Image: img, Cmd: cmd, Labels: h.labels(t, "helper")},
		&container.HostConfig{Mounts: []mount.Mount{{Type: mount.TypeVolume, Source: vol, Target: "/v", ReadOnly: readOnly}}},
		nil, nil, "")
	if err != nil {
		return "", fmt.Errorf("creating helper: %w", err)
	}
	// A failed removal is left to the test's sweep, which also matches helpers.
	defer h.Docker.ContainerRemove(context.Background(), created.ID, container.RemoveOptions{Force: true})
	waitc, errc := h.Docker.ContainerWait(ctx, created.ID, container.WaitConditionNextExit)
	if err := h.Docker.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return "", fmt.Errorf("starting helper: %w", err)
	}
	var code int64
	select {
	case res := <-waitc:
		code = res.StatusCode
	case err := <-errc:
		return "", fmt.Errorf("waiting for helper: %w", err)
	}
	all, stdout, err := h.logs(created.ID)
	if err != nil {
		return "", fmt.Errorf("helper logs: %w", err)
	}
	if code != 0 {
		return "", fmt.Errorf("%v exited %d: %s", cmd[0], code, strings.TrimSpace(all))
	}
	return stdout, nil
}

// removeByLabel removes containers (controllers first, so none recreates
// what we remove), then networks, then volumes carrying label (k=v).
func (h *Harness) removeByLabel(ctx context.Context, label string) error {
	return h.remove(ctx, filters.NewArgs(filters.Arg("label", label)), func(map[string]string) bool { return true })
}

func (h *Harness) remove(ctx context.Context, f filters.Args, match func(map[string]string) bool) error {
	var errs []error
	for _, role := range []string{"controller", ""} { // controllers, then everything left
		cs, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
		if err != nil {
			return fmt.Errorf("listing containers: %w", err)
		}
		for _, c := range cs {
			if (role == "" || c.Labels[LabelRole] == role) && match(c.Labels) {
				err := h.Docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
				if err != nil && !cerrdefs.IsNotFound(err) && !cerrdefs.IsConflict(err) { // conflict: removal already in progress
					errs = append(errs, fmt.Errorf("removing container %s: %w", c.ID[:12], err))
				}
			}
		}
	}
	nets, err := h.Docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing networks: %w", err))...)
	}
	for _, n := range nets {
		if match(n.Labels) {
			errs = append(errs, h.removeNetwork(ctx, n.ID))
		}
	}
	vols, err := h.Docker.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("listing volumes: %w", err))...)
	}
	for _, v := range vols.Volumes {
		if match(v.Labels) {
			if err := h.Docker.VolumeRemove(ctx, v.Name, true); err != nil && !cerrdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("removing volume %s: %w", v.Name, err))
			}
		}
	}
	return errors.Join(errs...)
}

// removeNetwork disconnects stragglers (e.g. containers a controller made
// without our labels) so the network can go.
func (h *Harness) removeNetwork(ctx context.Context, id string) error {
	if ins, err := h.Docker.NetworkInspect(ctx, id, network.InspectOptions{}); err == nil {
		for cid := range ins.Containers {
			_ = h.Docker.NetworkDisconnect(ctx, id, cid, true) // best effort; NetworkRemove reports what's left
		}
	}
	if err := h.Docker.NetworkRemove(ctx, id); err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("removing network %s: %w", id[:12], err)
	}
	return nil
}

// removeLeftovers removes resources of earlier runs that are dead: same
// host and the owning test process is gone, or older than staleAfter. A
// concurrent run (another live go test on this engine) is left alone.
func (h *Harness) removeLeftovers() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", LabelE2E+"=1"))
	err := h.remove(ctx, f, h.stale)
	f.Add("dangling", "true")
	imgs, lerr := h.Docker.ImageList(ctx, image.ListOptions{Filters: f})
	if lerr != nil {
		return errors.Join(err, fmt.Errorf("listing images: %w", lerr))
	}
	for _, img := range imgs {
		if h.stale(img.Labels) {
			// Best effort: a dangling image still used by a container stays.
			_, _ = h.Docker.ImageRemove(ctx, img.ID, image.RemoveOptions{PruneChildren: true})
		}
	}
	return err
}

func (h *Harness) stale(labels map[string]string) bool {
	if labels[LabelRun] == h.RunID {
		return false
	}
	host, pidStr, ok := strings.Cut(labels[labelOwner], "/")
	myHost, _, _ := strings.Cut(h.owner, "/")
	if pid, err := strconv.Atoi(pidStr); ok && err == nil && host == myHost {
		return !processAlive(pid)
	}
	if started, err := strconv.ParseInt(labels[labelStarted], 10, 64); err == nil {
		return h.started.Sub(time.Unix(started, 0)) > staleAfter
	}
	return true // labelled by an older harness without ownership labels
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

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
		defaults = []string{"SERVICE_NAME=" + cmp.Or(s.service, s.name)}
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
