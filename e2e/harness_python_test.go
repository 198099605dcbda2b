//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// Python services for the tests of the service kit (servicekit/python):
// a Debian bookworm image with python3, httpx, uvicorn and FastAPI, built
// by scripts/python-image.sh without a registry and cached by name across
// runs, and on top of it a small layer per run with the kit and the test
// app (e2e/testdata/kitapp) copied in.

// kitAppDir holds the test app and the layer's Dockerfile.
const kitAppDir = "e2e/testdata/kitapp"

// kitImage is built once per run; the Harness is one per run too.
var kitImage struct {
	once sync.Once
	id   string
	err  error
}

// PythonImage returns the name of the cached Python base image, building
// it first if the engine does not have it (about 80 s, once per machine).
func (h *Harness) PythonImage(t testing.TB) string {
	t.Helper()
	name, err := h.pythonImage()
	if err != nil {
		t.Fatalf("python base image: %v", err)
	}
	return name
}

func (h *Harness) pythonImage() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), buildBudget)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(h.root, "scripts", "python-image.sh"))
	cmd.Dir = h.root
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("scripts/python-image.sh: %w\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out)), nil
}

// KitImage returns the ID of the run's image: the Python base image, the
// crank_security package on PYTHONPATH and the test app as its command.
func (h *Harness) KitImage(t testing.TB) string {
	t.Helper()
	kitImage.once.Do(func() { kitImage.id, kitImage.err = h.buildKitImage() })
	if kitImage.err != nil {
		t.Fatalf("building the kit image: %v", kitImage.err)
	}
	return kitImage.id
}

// buildKitImage copies the kit and the app into a fresh context and builds
// it with the classic builder: no BuildKit front end to pull, and its layer
// cache makes an unchanged kit a rebuild of a moment.
func (h *Harness) buildKitImage() (string, error) {
	base, err := h.pythonImage()
	if err != nil {
		return "", err
	}
	ctxDir, err := os.MkdirTemp(h.tmp, "kit-")
	if err != nil {
		return "", err
	}
	if err := copyTree(filepath.Join(h.root, "servicekit", "python", "crank_security"), filepath.Join(ctxDir, "crank_security")); err != nil {
		return "", err
	}
	for _, f := range []string{"app.py", "Dockerfile"} {
		if err := copyFile(filepath.Join(h.root, kitAppDir, f), filepath.Join(ctxDir, f)); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildBudget)
	defer cancel()
	iid := filepath.Join(h.tmp, "kit.iid")
	build := exec.CommandContext(ctx, "docker", "build", "--iidfile", iid, "--build-arg", "BASE="+base,
		"--label", LabelE2E+"=1", "--label", LabelRun+"="+h.RunID,
		"--label", labelOwner+"="+h.owner, "--label", labelStarted+"="+strconv.FormatInt(h.started.Unix(), 10),
		ctxDir)
	build.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("docker build %s: %w\n%s", kitAppDir, err, out)
	}
	id, err := os.ReadFile(iid)
	if err != nil {
		return "", fmt.Errorf("reading image id: %w", err)
	}
	return strings.TrimSpace(string(id)), nil
}

// RunKitService is RunService with the kit image: a Python service running
// e2e/testdata/kitapp/app.py (KIT_RELOAD, CALL_URL, ... in its env). It
// runs under the engine's init (compose `init: true`): as PID 1, Python
// ignores SIGTERM while it imports, so a stop then would take the whole
// stop timeout.
func (h *Harness) RunKitService(t testing.TB, opts ...ServiceOption) *Container {
	t.Helper()
	s := &serviceSpec{image: h.KitImage(t), project: h.Project(t), role: "service", labels: map[string]string{}}
	s.edits = append(s.edits, func(_ *container.Config, hc *container.HostConfig) { hc.Init = &[]bool{true}[0] })
	for _, o := range opts {
		o(s)
	}
	return h.create(t, s)
}

// copyTree copies the regular files under src (bytecode caches left out).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		switch {
		case d.IsDir() && d.Name() == "__pycache__":
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case d.Type().IsRegular() && !strings.HasSuffix(d.Name(), ".pyc"):
			return copyFile(path, filepath.Join(dst, rel))
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
