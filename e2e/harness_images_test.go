//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

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
