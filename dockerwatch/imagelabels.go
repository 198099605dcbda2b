package dockerwatch

import (
	"context"
	"fmt"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
)

// ImageAPI is the one image call the label cache makes, with the SDK's
// exact signature.
type ImageAPI interface {
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (image.InspectResponse, error)
}

// maxCachedImages bounds the label cache. A stack has a handful of images;
// the bound only matters on a host that builds thousands.
const maxCachedImages = 4096

// imageLabels caches each image's Config.Labels by image ID. Image IDs are
// content digests, so an entry never goes stale: a rebuilt image is a new
// ID. The engine merges an image's LABELs into every container made from
// it, and this is how a container's labels are told apart from them.
type imageLabels struct {
	api ImageAPI
	mu  sync.Mutex
	m   map[string]map[string]string
}

// labelsOf returns the labels of image id. An image the engine no longer
// has (removed with `docker rmi -f` while a container still uses it) has no
// labels to compare with, so it yields none and no error.
func (l *imageLabels) labelsOf(ctx context.Context, id string) (map[string]string, error) {
	if id == "" {
		return nil, nil
	}
	l.mu.Lock()
	labels, ok := l.m[id]
	l.mu.Unlock()
	if ok {
		return labels, nil
	}
	resp, err := l.api.ImageInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspecting image %s: %w", ShortID(id), err)
	}
	if resp.Config != nil {
		labels = copyMap(resp.Config.Labels)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m == nil || len(l.m) >= maxCachedImages {
		l.m = map[string]map[string]string{}
	}
	l.m[id] = labels
	return labels, nil
}
