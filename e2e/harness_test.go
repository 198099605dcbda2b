//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"
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
