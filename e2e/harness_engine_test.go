//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"
)

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
