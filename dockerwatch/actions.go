package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/client"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ActionsAPI is the part of the Engine API the remediation actions (Restart,
// Signal, Recreate) call, with the SDK's exact signatures, so tests can hand
// in a fake and SDK churn stays inside this package.
type ActionsAPI interface {
	ContainerInspect(ctx context.Context, containerID string) (container.InspectResponse, error)
	ContainerRestart(ctx context.Context, containerID string, options container.StopOptions) error
	ContainerKill(ctx context.Context, containerID, signal string) error
	ContainerStop(ctx context.Context, containerID string, options container.StopOptions) error
	ContainerStart(ctx context.Context, containerID string, options container.StartOptions) error
	ContainerRename(ctx context.Context, containerID, newContainerName string) error
	ContainerCreate(ctx context.Context, config *container.Config, hostConfig *container.HostConfig, networkingConfig *network.NetworkingConfig, platform *ocispec.Platform, containerName string) (container.CreateResponse, error)
	ContainerRemove(ctx context.Context, containerID string, options container.RemoveOptions) error
	NetworkConnect(ctx context.Context, networkID, containerID string, config *network.EndpointSettings) error
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
}

// The SDK client is what production hands the actions.
var _ ActionsAPI = (*client.Client)(nil)

// Restart restarts a container: SIGTERM (or the container's own stop signal),
// then SIGKILL once timeout has passed. The timeout is rounded up to whole
// seconds, which is all the Engine API takes; a negative timeout means the
// container's own stop timeout (or the engine's default of 10s). A container
// the engine does not know yields an error wrapping ErrNotFound.
func (c *Client) Restart(ctx context.Context, id string, timeout time.Duration) error {
	defer c.Interventions.Begin(id)()
	defer c.Inspections.Changed(id) // what the action changed is news, event or not
	return restart(ctx, c.sdk, id, timeout)
}

// Signal sends signal (e.g. "SIGHUP", "HUP" or "1") to the container's main
// process, for services that reload their certificates on a signal. An empty
// signal is refused: the engine would read it as SIGKILL. Signalling a
// container that is not running fails with an error satisfying
// errdefs.IsConflict.
func (c *Client) Signal(ctx context.Context, id, signal string) error {
	defer c.Interventions.Begin(id)()
	defer c.Inspections.Changed(id) // what the action changed is news, event or not
	return sendSignal(ctx, c.sdk, id, signal)
}

// errEmptySignal guards against ContainerKill's default: no signal means KILL.
var errEmptySignal = errors.New("empty signal (the engine would send SIGKILL)")

func restart(ctx context.Context, api ActionsAPI, id string, timeout time.Duration) error {
	err := api.ContainerRestart(ctx, id, container.StopOptions{Timeout: stopSeconds(timeout)})
	if err != nil {
		return wrapContainerErr(err, "restarting container %s", id)
	}
	return nil
}

func sendSignal(ctx context.Context, api ActionsAPI, id, signal string) error {
	if signal == "" {
		return fmt.Errorf("signalling container %s: %w", id, errEmptySignal)
	}
	if err := api.ContainerKill(ctx, id, signal); err != nil {
		return wrapContainerErr(err, "sending %s to container %s", signal, id)
	}
	return nil
}

// stopSeconds converts a stop timeout to the API's whole seconds, rounding
// up so a caller's grace period is never cut short. Negative means "the
// container's own default" (nil).
func stopSeconds(d time.Duration) *int {
	if d < 0 {
		return nil
	}
	s := int(math.Ceil(d.Seconds()))
	return &s
}

// wrapContainerErr adds context to an engine error and, for not-found, also
// our ErrNotFound, the same way Inspect does.
func wrapContainerErr(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if cerrdefs.IsNotFound(err) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%s: %w: %w", msg, ErrNotFound, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
