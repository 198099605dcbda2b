//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
)

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
