//go:build e2e

package e2e

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
)

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
