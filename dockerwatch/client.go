package dockerwatch

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
)

// ErrNotFound is wrapped by every error this package returns for a container
// the engine does not know (any more). The wrapped error keeps the engine's own
// error too, so both errors.Is(err, ErrNotFound) and errdefs.IsNotFound(err)
// hold.
var ErrNotFound = errors.New("container not found")

// The SDK client is what production hands the Watcher.
var _ EventsAPI = (*client.Client)(nil)

// Client wraps the SDK client. It exists so that the rest of the controller
// gets our Container model, not the SDK's types, and so that version
// negotiation can never be forgotten.
type Client struct {
	sdk *client.Client
	// serverAPI is the API version the daemon reported in the last successful
	// Ping, for logs and the status page.
	serverAPI atomic.Value // string
	images    imageLabels
	// Interventions records what this client did to containers, so the
	// event stream can tell the controller's own stops from others'.
	Interventions *Interventions
	// Inspections remembers inspects for Known until the event stream says
	// a container changed; the Watcher keeps it told.
	Inspections *Inspections
	// KeepEnv, if set, names the only environment variables Container.Env
	// and Service.Env keep. A container's environment often carries its
	// secrets, and a caller that reads a few variables of it then holds
	// no others: not in memory, not in Inspections, not in a heap profile.
	// Nil keeps every variable. Set it before the client is used.
	KeepEnv []string
}

// New returns a Client for host, e.g. "unix:///var/run/docker.sock". An empty
// host means DOCKER_HOST, or the platform's default socket when that is unset.
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH are honoured.
//
// The client always negotiates the API version with the daemon on first use
// and never pins one: Docker 29 rejects clients older than API 1.44, and old
// engines (20.10 speaks 1.41) reject versions newer than their own. For the
// same reason DOCKER_API_VERSION is deliberately ignored: it disables
// negotiation in the SDK. New does no I/O.
func New(host string) (*Client, error) {
	opts := []client.Opt{
		client.WithTLSClientConfigFromEnv(),
		client.WithHostFromEnv(),
		client.WithAPIVersionNegotiation(),
	}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	sdk, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("creating docker client for %q: %w", host, err)
	}
	c := &Client{sdk: sdk, images: imageLabels{api: sdk}, Interventions: NewInterventions(nil),
		Inspections: NewInspections(nil, 0)}
	c.serverAPI.Store("")
	return c, nil
}

// SDK returns the underlying SDK client, for the few callers (remediation, e2e
// tests, the Watcher) that need more than this wrapper offers. It satisfies
// EventsAPI.
func (c *Client) SDK() *client.Client { return c.sdk }

// Close releases the SDK client's idle connections.
func (c *Client) Close() error { return c.sdk.Close() }

// Inspect returns the container with the given ID or name, with its
// image's labels (cached per image ID). A container the engine does not
// know yields an error wrapping both ErrNotFound and the engine's
// not-found error. It always asks the engine, and keeps what an inspect
// by full ID answered for Known.
func (c *Client) Inspect(ctx context.Context, id string) (Container, error) {
	mark := c.Inspections.begin()
	ctr, err := c.inspect(ctx, id)
	if err == nil && ctr.ID == id {
		c.Inspections.remember(id, ctr, mark)
	}
	return ctr, err
}

func (c *Client) inspect(ctx context.Context, id string) (Container, error) {
	resp, err := c.sdk.ContainerInspect(ctx, id)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return Container{}, fmt.Errorf("inspecting container %s: %w: %w", id, ErrNotFound, err)
		}
		return Container{}, fmt.Errorf("inspecting container %s: %w", id, err)
	}
	ctr := FromInspect(resp)
	ctr.Env = onlyEnv(ctr.Env, c.KeepEnv)
	if ctr.ImageLabels, err = c.images.labelsOf(ctx, ctr.ImageID); err != nil {
		return Container{}, fmt.Errorf("inspecting container %s: %w", id, err)
	}
	return ctr, nil
}

// onlyEnv returns the variables of env that keep names; a nil keep keeps
// them all.
func onlyEnv(env map[string]string, keep []string) map[string]string {
	if keep == nil {
		return env
	}
	var out map[string]string
	for _, k := range keep {
		if v, ok := env[k]; ok {
			if out == nil {
				out = make(map[string]string, len(keep))
			}
			out[k] = v
		}
	}
	return out
}

// List returns every container, stopped ones included, each fully inspected.
// A container removed between the list and its inspect is left out: it no
// longer exists, which is what a caller of List wants to know.
func (c *Client) List(ctx context.Context) ([]Container, error) {
	summaries, err := c.sdk.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	out := make([]Container, 0, len(summaries))
	for _, s := range summaries {
		ctr, err := c.Inspect(ctx, s.ID)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing containers: %w", err)
		}
		out = append(out, ctr)
	}
	return out, nil
}

// Ping checks that the daemon answers. It also completes API version
// negotiation from the ping's answer, sparing the first real request the
// extra round trip.
func (c *Client) Ping(ctx context.Context) error {
	p, err := c.sdk.Ping(ctx)
	if err != nil {
		return fmt.Errorf("pinging docker daemon at %s: %w", c.sdk.DaemonHost(), err)
	}
	c.sdk.NegotiateAPIVersionPing(p)
	c.serverAPI.Store(p.APIVersion)
	return nil
}

// ServerAPIVersion returns the API version the daemon reported in the most
// recent successful Ping, e.g. "1.41", or "" if Ping has not succeeded yet.
// The version actually spoken is the lower of this and the SDK's own maximum
// (see SDK().ClientVersion()).
func (c *Client) ServerAPIVersion() string {
	return c.serverAPI.Load().(string)
}
