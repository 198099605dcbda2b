//go:build e2e

package e2e

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// bundleWatch notes when each service's bundle lands: the moment ..data
// appears in <root>/<service>/, which the volume's AtomicWriter renames into
// place after every file of the generation is written. It uses inotify, so
// watching a thousand directories costs the controller's two cores nothing
// while it works.
type bundleWatch struct {
	root string
	f    *os.File
	fd   int

	mu       sync.Mutex
	services map[int32]string // watch descriptor → service; the root is ""
	landed   map[string]time.Time
	overflow bool
	changed  chan struct{} // signalled after every batch of events
	done     chan struct{}
}

const dataLink = "..data"

func watchBundles(root string) (*bundleWatch, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC | syscall.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w := &bundleWatch{root: root, fd: fd, f: os.NewFile(uintptr(fd), "inotify"),
		services: map[int32]string{}, landed: map[string]time.Time{},
		changed: make(chan struct{}, 1), done: make(chan struct{})}
	wd, err := syscall.InotifyAddWatch(fd, root, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_ONLYDIR)
	if err != nil {
		w.f.Close()
		return nil, fmt.Errorf("watching %s: %w", root, err)
	}
	w.services[int32(wd)] = ""
	go w.read()
	return w, nil
}

func (w *bundleWatch) close() {
	w.f.Close() // unblocks read, which the runtime poller parks
	<-w.done
}

func (w *bundleWatch) read() {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			return
		}
		now := time.Now()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			// struct inotify_event: wd, mask, cookie, len, then len bytes
			// of NUL-padded name.
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			mask := binary.NativeEndian.Uint32(buf[off+4:])
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			name := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+nameLen]
			w.handle(wd, mask, string(name[:clen(name)]), now)
			off += syscall.SizeofInotifyEvent + nameLen
		}
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

func (w *bundleWatch) handle(wd int32, mask uint32, name string, now time.Time) {
	if mask&syscall.IN_Q_OVERFLOW != 0 {
		w.mu.Lock()
		w.overflow = true
		w.mu.Unlock()
		return
	}
	w.mu.Lock()
	service, ok := w.services[wd]
	w.mu.Unlock()
	switch {
	case !ok:
	case service == "" && mask&syscall.IN_ISDIR != 0:
		w.watchService(name)
	case service != "" && name == dataLink:
		w.land(service, now)
	}
}

// watchService watches a new service directory. ..data may have landed
// before the watch existed; a stat after adding it catches that, at the
// cost of a timestamp late by the gap.
func (w *bundleWatch) watchService(service string) {
	dir := filepath.Join(w.root, service)
	wd, err := syscall.InotifyAddWatch(w.fd, dir, syscall.IN_CREATE|syscall.IN_MOVED_TO|syscall.IN_ONLYDIR)
	if err != nil {
		return // removed already, or not a directory
	}
	w.mu.Lock()
	w.services[int32(wd)] = service
	w.mu.Unlock()
	if _, err := os.Lstat(filepath.Join(dir, dataLink)); err == nil {
		w.land(service, time.Now())
	}
}

// land keeps the first time a service's bundle appeared.
func (w *bundleWatch) land(service string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.landed[service]; !ok {
		w.landed[service] = at
	}
}

// waitAll waits until every service in want has a bundle and returns when
// each landed. It fails if inotify dropped events, which would make the
// figures wrong rather than merely late.
func (w *bundleWatch) waitAll(ctx context.Context, want []string) (map[string]time.Time, error) {
	for {
		w.mu.Lock()
		overflow := w.overflow
		missing := 0
		for _, s := range want {
			if _, ok := w.landed[s]; !ok {
				missing++
			}
		}
		w.mu.Unlock()
		if overflow {
			return nil, errors.New("inotify queue overflowed: bundle times are incomplete")
		}
		if missing == 0 {
			w.mu.Lock()
			defer w.mu.Unlock()
			out := make(map[string]time.Time, len(want))
			for _, s := range want {
				out[s] = w.landed[s]
			}
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d bundles missing: %w", missing, len(want), ctx.Err())
		case <-w.changed:
		case <-time.After(time.Second): // a bundle found by watchService's stat signals nothing
		}
	}
}

// createEvents records the engine's own time of each container's create
// event in project: the start of the event → bundle latency, which leaves
// out how long the create call itself took.
type createEvents struct {
	mu     sync.Mutex
	at     map[string]time.Time // container ID → event time
	err    error
	cancel context.CancelFunc
	done   chan struct{}
}

// recordCreates subscribes from since, so events the daemon published while
// the subscription was still being set up are replayed rather than lost.
func recordCreates(docker *client.Client, project string, since time.Time) *createEvents {
	ctx, cancel := context.WithCancel(context.Background())
	e := &createEvents{at: map[string]time.Time{}, cancel: cancel, done: make(chan struct{})}
	msgs, errs := docker.Events(ctx, events.ListOptions{
		Since: fmt.Sprintf("%d.%09d", since.Unix(), since.Nanosecond()),
		Filters: filters.NewArgs(filters.Arg("type", "container"), filters.Arg("event", "create"),
			filters.Arg("label", LabelComposeProject+"="+project)),
	})
	go func() {
		defer close(e.done)
		for {
			select {
			case m := <-msgs:
				e.mu.Lock()
				e.at[m.Actor.ID] = time.Unix(0, m.TimeNano)
				e.mu.Unlock()
			case err := <-errs:
				if ctx.Err() == nil {
					e.mu.Lock()
					e.err = err
					e.mu.Unlock()
				}
				return
			}
		}
	}()
	return e
}

// waitAll waits for the create events of ids and returns their times.
func (e *createEvents) waitAll(ctx context.Context, ids []string) (map[string]time.Time, error) {
	for {
		e.mu.Lock()
		missing, err := 0, e.err
		for _, id := range ids {
			if _, ok := e.at[id]; !ok {
				missing++
			}
		}
		out := map[string]time.Time{}
		if missing == 0 {
			for _, id := range ids {
				out[id] = e.at[id]
			}
		}
		e.mu.Unlock()
		switch {
		case err != nil:
			return nil, fmt.Errorf("event stream: %w", err)
		case missing == 0:
			return out, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%d of %d create events missing: %w", missing, len(ids), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (e *createEvents) close() {
	e.cancel()
	<-e.done
}
