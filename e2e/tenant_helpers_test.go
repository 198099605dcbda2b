//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"
)

// Fixtures of the hostile-tenant and operator-stop scenarios
// (identity_test.go, operatorstop_test.go). Everything is prefixed tn so it
// cannot collide with the other e2e files of the package.

// tnProject is a compose project name for the test that starts with prefix
// (e2eident, e2eopstop), so a human can tell these resources apart. It
// registers the harness sweep first, which removes everything labelled with
// the test's scope even on failure.
func tnProject(t *testing.T, h *Harness, prefix string) string {
	t.Helper()
	h.Project(t)
	sum := sha256.Sum256([]byte(t.Name()))
	return prefix + "-" + h.RunID + "-" + hex.EncodeToString(sum[:3])
}

// tnNetwork is NewNetwork under a name of our own: a bridge network
// labelled for the sweep, whose subnet the HTTP helpers may dial.
func tnNetwork(t *testing.T, h *Harness, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	if _, err := h.Docker.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Labels: h.labels(t, "network")}); err != nil {
		t.Fatalf("creating network %s: %v", name, err)
	}
	tnAllowNetwork(t, h, name)
	return name
}

// tnAllowNetwork lets the HTTP helpers dial containers on a network the
// test made (itself, or through compose).
func tnAllowNetwork(t *testing.T, h *Harness, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
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
}

// tnVolume is NewVolume under a name of our own.
func tnVolume(t *testing.T, h *Harness, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	if _, err := h.Docker.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: h.labels(t, "volume")}); err != nil {
		t.Fatalf("creating volume %s: %v", name, err)
	}
	return name
}

// tnStartController runs the controller for project with lvFastEnv plus
// env, on net, with certs (a host directory) as its certs root, and waits
// for /readyz. It returns a levels fixture, so the levels helpers (logs,
// checkMTLS, startService, events) work on it.
func tnStartController(t *testing.T, h *Harness, project, netName, certs string, env ...string) *lvFixture {
	t.Helper()
	f := &lvFixture{h: h, net: netName, certs: certs, events: lvWatchEvents(t, h)}
	f.ctrl = h.StartController(t, ControllerOptions{
		Network: netName, CertsVolume: certs, StateVolume: tnVolume(t, h, project+"-state"),
		Env: mergeEnv(lvFastEnv, env), Project: project, Name: project + "-controller",
	})
	t.Cleanup(func() { // before the harness sweep removes it
		if t.Failed() {
			t.Logf("full controller log:\n%s", h.Logs(t, f.ctrl.ID))
		}
	})
	WaitFor(t, lvDeadline, func() (bool, string) {
		ok, status := tnReady(h, f.ctrl)
		return ok, status + "\n" + f.logTail(t)
	})
	return f
}

// tnReady reports whether the controller's /readyz answers 200.
func tnReady(h *Harness, ctrl *Controller) (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res, err := h.HTTPGet(ctx, "http://"+net.JoinHostPort(ctrl.IP, "9090")+"/readyz", nil)
	if err != nil {
		return false, "readyz: " + err.Error()
	}
	return res.Status == 200, fmt.Sprintf("readyz %d: %s", res.Status, bytes.TrimSpace(res.Body))
}

// tnReport is the part of GET /api/v1/status these tests read.
type tnReport struct {
	Containers []tnContainer `json:"containers"`
}

type tnContainer struct {
	Service     string      `json:"service"`
	Container   string      `json:"container"`
	ContainerID string      `json:"container_id"`
	Project     string      `json:"project"`
	Observed    string      `json:"observed"`
	Findings    []tnFinding `json:"findings"`
	Probe       struct {
		LastAt time.Time `json:"last_at"`
	} `json:"probe"`
	Bundle struct {
		Generation   string `json:"generation"`
		IssuedReason string `json:"issued_reason"`
	} `json:"bundle"`
	UpdatedAt time.Time `json:"updated_at"`
}

type tnFinding struct {
	Source  string `json:"source"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// tnStatus reads the controller's status API.
func tnStatus(h *Harness, ctrl *Controller) (tnReport, error) {
	var rep tnReport
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := h.HTTPGet(ctx, "http://"+net.JoinHostPort(ctrl.IP, "9090")+"/api/v1/status", nil)
	if err != nil {
		return rep, err
	}
	if res.Status != 200 {
		return rep, fmt.Errorf("status API: got %d: %.300s", res.Status, res.Body)
	}
	if err := json.Unmarshal(res.Body, &rep); err != nil {
		return rep, fmt.Errorf("decoding status API: %w: %.300s", err, res.Body)
	}
	return rep, nil
}

// byID returns the status of the container whose ID is id (the API may
// carry the short or the full ID).
func (r tnReport) byID(id string) (tnContainer, bool) {
	for _, c := range r.Containers {
		if c.ContainerID != "" && (strings.HasPrefix(id, c.ContainerID) || strings.HasPrefix(c.ContainerID, id)) {
			return c, true
		}
	}
	return tnContainer{}, false
}

// finding returns c's first finding with source and reason.
func (c tnContainer) finding(source, reason string) (tnFinding, bool) {
	for _, f := range c.Findings {
		if f.Source == source && f.Reason == reason {
			return f, true
		}
	}
	return tnFinding{}, false
}

func (c tnContainer) String() string {
	var fs []string
	for _, f := range c.Findings {
		fs = append(fs, fmt.Sprintf("%s/%s: %q", f.Source, f.Reason, f.Message))
	}
	return fmt.Sprintf("%s (service %s, observed %s, last probe %s, bundle issued for %q) findings [%s]",
		c.Container, c.Service, c.Observed, c.Probe.LastAt.Format("15:04:05.000"), c.Bundle.IssuedReason, strings.Join(fs, "; "))
}

// tnProbes counts the distinct probes of one container that the status API
// reports after a moment: it remembers every probe.last_at it has seen.
type tnProbes struct {
	id    string
	after time.Time
	seen  map[time.Time]bool
}

func newProbeCounter(id string, after time.Time) *tnProbes {
	return &tnProbes{id: id, after: after, seen: map[time.Time]bool{}}
}

// observe records the container's last probe in rep, and returns how many
// probes after the moment it has seen so far.
func (p *tnProbes) observe(rep tnReport) int {
	if c, ok := rep.byID(p.id); ok && c.Probe.LastAt.After(p.after) {
		p.seen[c.Probe.LastAt] = true
	}
	return len(p.seen)
}

// tnWaitProbed waits until the controller has probed the container id at
// least n times after the moment after: evidence that it has looked, which
// every "nothing happened" assertion needs first.
func tnWaitProbed(t *testing.T, f *lvFixture, id string, after time.Time, n int) {
	t.Helper()
	p := newProbeCounter(id, after)
	WaitFor(t, lvDeadline, func() (bool, string) {
		rep, err := tnStatus(f.h, f.ctrl)
		if err != nil {
			return false, err.Error()
		}
		got := p.observe(rep)
		return got >= n, fmt.Sprintf("got %d probes of %.12s after %s, want %d", got, id, after.Format("15:04:05.000"), n)
	})
}

// tnExec runs cmd in the running container id as user and returns its
// output; a non-zero exit is an error carrying the output.
func tnExec(h *Harness, id, user string, cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	ex, err := h.Docker.ContainerExecCreate(ctx, id, container.ExecOptions{User: user, Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return "", fmt.Errorf("creating exec %v in %.12s: %w", cmd, id, err)
	}
	att, err := h.Docker.ContainerExecAttach(ctx, ex.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", fmt.Errorf("starting exec %v in %.12s: %w", cmd, id, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, att.Reader); err != nil {
		return out.String(), fmt.Errorf("reading exec output: %w", err)
	}
	// The stream ends when the process does; the exit code follows.
	for {
		ins, err := h.Docker.ContainerExecInspect(ctx, ex.ID)
		if err != nil {
			return out.String(), fmt.Errorf("inspecting exec: %w", err)
		}
		if !ins.Running {
			if ins.ExitCode != 0 {
				return out.String(), fmt.Errorf("%v as %q exited %d: %s", cmd, user, ins.ExitCode, strings.TrimSpace(out.String()))
			}
			return out.String(), nil
		}
		select {
		case <-ctx.Done():
			return out.String(), fmt.Errorf("exec %v: %w", cmd, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// tnEventsBetween asks the engine for the container events of id in
// [since, until]. The engine keeps only its last 256 events, so on a busy
// engine this can miss some; lvEvents records them live and is the one to
// trust for "none happened", this is the engine's own word on the window.
func tnEventsBetween(h *Harness, id string, since, until time.Time) ([]events.Message, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	stamp := func(at time.Time) string { return fmt.Sprintf("%d.%09d", at.Unix(), at.Nanosecond()) }
	msgs, errs := h.Docker.Events(ctx, events.ListOptions{
		Since: stamp(since), Until: stamp(until),
		Filters: filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("container", id)),
	})
	var out []events.Message
	for {
		select {
		case m := <-msgs:
			out = append(out, m)
		case err := <-errs:
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("engine events of %.12s: %w", id, err)
		}
	}
}

// tnActions lists the actions of msgs, for messages and assertions.
func tnActions(msgs []events.Message) []string {
	var s []string
	for _, m := range msgs {
		s = append(s, time.Unix(0, m.TimeNano).Format("15:04:05.000")+" "+string(m.Action))
	}
	return s
}

// tnLogFollower collects a container's output as it is written, so the
// log outlives the container (compose down removes it).
type tnLogFollower struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
	stop context.CancelFunc
}

func (l *tnLogFollower) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *tnLogFollower) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Wait returns once the container's output has ended (it is gone).
func (l *tnLogFollower) Wait(d time.Duration) bool {
	select {
	case <-l.done:
		return true
	case <-time.After(d):
		return false
	}
}

func tnFollowLogs(t *testing.T, h *Harness, id string) *tnLogFollower {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	l := &tnLogFollower{done: make(chan struct{}), stop: cancel}
	rc, err := h.Docker.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		cancel()
		t.Fatalf("following the logs of %.12s: %v", id, err)
	}
	go func() {
		defer close(l.done)
		defer rc.Close()
		_, _ = stdcopy.StdCopy(l, l, rc)
	}()
	t.Cleanup(func() {
		cancel()
		<-l.done
	})
	return l
}

// tnLogs parses the JSON records of a controller's output.
func tnLogs(out string) []lvLog {
	var ls []lvLog
	for line := range strings.Lines(out) {
		var l lvLog
		if err := json.Unmarshal([]byte(line), &l); err == nil && l.Msg != "" {
			ls = append(ls, l)
		}
	}
	return ls
}

// tnImageWithLabels builds a tiny image FROM the testservice image that only
// adds labels (as a Dockerfile LABEL would), tags it, and removes it (and
// any container still using it) when the test ends. It returns the tag.
func tnImageWithLabels(t *testing.T, h *Harness, tag string, labels map[string]string) string {
	t.Helper()
	base := h.ServiceImage(t)
	var df strings.Builder
	fmt.Fprintf(&df, "FROM %s\n", base)
	for k, v := range labels {
		fmt.Fprintf(&df, "LABEL %s=%q\n", k, v)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildBudget)
	defer cancel()
	args := []string{"build", "-q", "-t", tag}
	for k, v := range h.labels(t, "image") {
		args = append(args, "--label", k+"="+v)
	}
	build := exec.CommandContext(ctx, "docker", append(args, dir)...)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		users, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("ancestor", tag))})
		if err != nil {
			t.Errorf("listing containers of %s: %v", tag, err)
		}
		for _, c := range users {
			_ = h.Docker.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}) // the sweep reports what stays
		}
		if _, err := h.Docker.ImageRemove(ctx, tag, image.RemoveOptions{PruneChildren: true}); err != nil {
			t.Errorf("removing image %s: %v", tag, err)
		}
	})
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docker build of %s: %v\n%s\nDockerfile:\n%s", tag, err, out, df.String())
	}
	return tag
}
