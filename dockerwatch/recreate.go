package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// Errors Recreate wraps, so a caller can tell how things were left.
var (
	// ErrRolledBack: a step failed after the old container had been touched,
	// and the old container is back (original name, running again if it was
	// running). Nothing was lost; retrying later is safe.
	ErrRolledBack = errors.New("recreate rolled back, the old container is back in place")
	// ErrRollbackFailed: a step failed and so did part of the rollback. The
	// old container (never removed, volumes untouched) may be stopped or
	// still carry its temporary name "<name>-crank-old-<shortid>"; a human
	// should look.
	ErrRollbackFailed = errors.New("recreate failed and its rollback failed too")
	// ErrOldContainerLeft: the new container is in place (and running, if
	// the old one was), but the old one could not be removed and remains,
	// stopped, under its temporary name. Recreate returns the new ID with it.
	ErrOldContainerLeft = errors.New("recreated, but the old container was left behind")
)

// rollbackTimeout bounds the compensating calls. They run on a context that
// ignores the caller's cancellation: a cancelled reconcile must not leave a
// service down under a temporary name.
const rollbackTimeout = time.Minute

// oldNameInfix names the old container while its replacement is made.
const oldNameInfix = "-crank-old-"

// Recreate replaces container id by an identical one that also carries
// addLabels and lacks removeLabels, and returns the new container's ID.
// Compose labels (com.docker.compose.*) may not be added or removed, so
// compose's config-hash stays what compose wrote and `docker compose up`
// leaves the new container alone.
//
// What is preserved, and how, is documented on buildRecreateSpec. The image
// is the one the old container runs: if its configured reference (e.g.
// "app:1.2") now names another image, the new container is created from the
// old image ID instead, and Config.Image then shows that ID.
//
// Procedure: inspect; stop the old container (if running) with stopTimeout
// (rounded up to seconds; negative means the container's own default);
// rename it to "<name>-crank-old-<shortid>"; create the new one under the
// original name with its primary network, connect the other networks with
// their aliases and static IPs; start it if the old one was running; remove
// the old container without its volumes. Volumes are never removed.
//
// If stop, rename, create, connect or start fails, the half-made new
// container is removed, the old one renamed back and started again if it
// was running, and the error wraps the cause and ErrRolledBack (or
// ErrRollbackFailed). Containers that can't be recreated safely (auto-remove,
// being removed, dead) are refused before anything is changed.
func (c *Client) Recreate(ctx context.Context, id string, addLabels map[string]string, removeLabels []string, stopTimeout time.Duration) (newID string, err error) {
	defer c.Interventions.Begin(id)()
	defer c.Inspections.Changed(id) // what the action changed is news, event or not
	return recreate(ctx, c.sdk, id, addLabels, removeLabels, stopTimeout)
}

func recreate(ctx context.Context, api ActionsAPI, id string, addLabels map[string]string, removeLabels []string, stopTimeout time.Duration) (string, error) {
	old, err := api.ContainerInspect(ctx, id)
	if err != nil {
		return "", wrapContainerErr(err, "recreating container %s: inspecting", id)
	}
	if err := checkRecreatable(old); err != nil {
		return "", fmt.Errorf("recreating container %s: %w", id, err)
	}
	image, err := pinnedImage(ctx, api, old)
	if err != nil {
		return "", fmt.Errorf("recreating container %s: %w", id, err)
	}
	spec, err := buildRecreateSpec(old, image, addLabels, removeLabels)
	if err != nil {
		return "", fmt.Errorf("recreating container %s: %w", id, err)
	}
	r := &recreation{
		api:     api,
		oldID:   old.ID,
		name:    spec.Name,
		tmpName: spec.Name + oldNameInfix + shortID(old.ID),
		running: old.State != nil && old.State.Running,
		spec:    spec,
	}
	return r.run(ctx, stopTimeout)
}

// checkRecreatable refuses containers whose recreation would lose something.
func checkRecreatable(old container.InspectResponse) error {
	if old.ContainerJSONBase == nil || old.Config == nil || old.HostConfig == nil {
		return fmt.Errorf("%w: incomplete inspect response", errNotRecreatable)
	}
	if len(old.ID) < shortIDLen {
		return fmt.Errorf("%w: malformed container ID %q", errNotRecreatable, old.ID)
	}
	if old.HostConfig.AutoRemove {
		// Stopping it would make the engine delete it, anonymous volumes
		// included, before there is a replacement.
		return fmt.Errorf("%w: it has auto-remove set", errNotRecreatable)
	}
	if s := old.State; s != nil && (s.Status == string(StateRemoving) || s.Status == string(StateDead) || s.Dead) {
		return fmt.Errorf("%w: it is %s", errNotRecreatable, s.Status)
	}
	return nil
}

// pinnedImage returns "" when the container's configured image reference
// still resolves to the image the container runs, else the old image ID to
// create from, so a recreate never doubles as an unasked-for upgrade.
func pinnedImage(ctx context.Context, api ActionsAPI, old container.InspectResponse) (string, error) {
	ref, runs := old.Config.Image, old.Image
	if ref == "" || runs == "" || ref == runs {
		return "", nil
	}
	img, err := api.ImageInspect(ctx, ref)
	switch {
	case cerrdefs.IsNotFound(err):
		return runs, nil // the tag was removed; the old image is still there
	case err != nil:
		return "", fmt.Errorf("inspecting image %s: %w", ref, err)
	case img.ID != runs:
		return runs, nil
	}
	return "", nil
}

// recreation is one run of the procedure; its flags record what has been
// done so far, which is exactly what the rollback has to undo.
type recreation struct {
	api                  ActionsAPI
	oldID, name, tmpName string
	running              bool // the old container was running
	spec                 recreateSpec

	stopped, renamed bool
	stopFailed       bool // the stop call returned an error (it may still be under way)
	newID            string
	stopTimeout      time.Duration
}

func (r *recreation) run(ctx context.Context, stopTimeout time.Duration) (string, error) {
	if r.running {
		r.stopped = true // a failed stop may still have stopped it
		r.stopTimeout = stopTimeout
		if err := r.api.ContainerStop(ctx, r.oldID, container.StopOptions{Timeout: stopSeconds(stopTimeout)}); err != nil {
			r.stopFailed = true
			return "", r.fail(ctx, "stopping the old container", err)
		}
	}
	if err := r.api.ContainerRename(ctx, r.oldID, r.tmpName); err != nil {
		return "", r.fail(ctx, "renaming the old container to "+r.tmpName, err)
	}
	r.renamed = true
	created, err := r.api.ContainerCreate(ctx, r.spec.Config, r.spec.HostConfig, r.spec.Networking, nil, r.name)
	if created.ID != "" {
		r.newID = created.ID // even with an error: a half-made container must go
	}
	if err != nil {
		return "", r.fail(ctx, "creating the new container", err)
	}
	for _, ep := range r.spec.Extra {
		if err := r.api.NetworkConnect(ctx, ep.Network, r.newID, ep.Settings); err != nil {
			return "", r.fail(ctx, "connecting the new container to network "+ep.Network, err)
		}
	}
	if r.running {
		if err := r.api.ContainerStart(ctx, r.newID, container.StartOptions{}); err != nil {
			return "", r.fail(ctx, "starting the new container", err)
		}
	}
	err = r.api.ContainerRemove(ctx, r.oldID, container.RemoveOptions{Force: true, RemoveVolumes: false})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return r.newID, fmt.Errorf("recreating container %s: new container %s is in place; removing the old container %s (%s): %w: %w",
			r.name, shortID(r.newID), r.tmpName, shortID(r.oldID), ErrOldContainerLeft, err)
	}
	return r.newID, nil
}

// fail undoes what was done, newest first, and builds the error. Every
// compensating step is attempted even if an earlier one fails, so the old
// container at least runs again if it can.
func (r *recreation) fail(ctx context.Context, step string, cause error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	var errs []error
	if r.newID != "" {
		if err := r.api.ContainerRemove(rctx, r.newID, container.RemoveOptions{Force: true, RemoveVolumes: false}); err != nil && !cerrdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("removing the new container %s: %w", shortID(r.newID), err))
		}
	}
	if r.renamed {
		if err := r.api.ContainerRename(rctx, r.oldID, r.name); err != nil {
			errs = append(errs, fmt.Errorf("renaming the old container back from %s: %w", r.tmpName, err))
		}
	}
	if r.stopped {
		if r.stopFailed {
			// A stop whose call failed (a timeout, a cancelled client) can
			// still be under way in the engine; a start now would be a
			// no-op and the stop would then win. Stop again, uncancelled,
			// which returns once the container is down, then start.
			_ = r.api.ContainerStop(rctx, r.oldID, container.StopOptions{Timeout: stopSeconds(r.stopTimeout)})
		}
		if err := r.api.ContainerStart(rctx, r.oldID, container.StartOptions{}); err != nil {
			errs = append(errs, fmt.Errorf("starting the old container again: %w", err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("recreating container %s (%s): %s: %w; %w: %w",
			r.name, shortID(r.oldID), step, cause, ErrRollbackFailed, errors.Join(errs...))
	}
	return fmt.Errorf("recreating container %s (%s): %s: %w (%w)", r.name, shortID(r.oldID), step, cause, ErrRolledBack)
}
