//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/api/types/volume"
	"github.com/docker/docker/pkg/stdcopy"
)

// swarmAPI reads the controller's API on its published loopback port.
type swarmAPI struct {
	port         int
	stateVolume  string
	controllerID string // its service
}

// swarmService is the part of GET /api/v1/swarm the test reads.
type swarmService struct {
	Service    string `json:"service"`
	Identity   string `json:"identity"`
	Generation int    `json:"generation"`
	Mounted    int    `json:"mounted_generation"`
	Tasks      []struct {
		Task       string   `json:"task"`
		TaskID     string   `json:"task_id"`
		Node       string   `json:"node"`
		State      string   `json:"state"`
		Generation int      `json:"generation"`
		Observed   string   `json:"observed"`
		Served     string   `json:"served_fingerprint"`
		Findings   []string `json:"findings"`
	} `json:"tasks"`
}

// apiSummary is the part of GET /api/v1/status's summary the test reads.
type apiSummary struct {
	CASubject  string `json:"ca_subject"`
	CARollover struct {
		Phase       string `json:"phase"`
		Done, Total int
	} `json:"ca_rollover"`
}

func (a *swarmAPI) fetch(path string, v any) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, LoopbackURL(a.port, path), nil)
	if err != nil {
		return err
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s %v", path, resp.StatusCode, bytes.TrimSpace(body), err)
	}
	if v == nil {
		return nil
	}
	return json.Unmarshal(body, v)
}

func (a *swarmAPI) ready() (bool, string) {
	if err := a.fetch("/readyz", nil); err != nil {
		return false, err.Error()
	}
	return true, ""
}

// get returns the status of the service whose identity is name.
func (a *swarmAPI) get(name string) (swarmService, error) {
	var body struct {
		Services []swarmService `json:"services"`
	}
	if err := a.fetch("/api/v1/swarm", &body); err != nil {
		return swarmService{}, err
	}
	for _, s := range body.Services {
		if s.Identity == name {
			return s, nil
		}
	}
	return swarmService{}, fmt.Errorf("no service %s in the swarm status yet", name)
}

func (a *swarmAPI) service(t *testing.T, name string) swarmService {
	t.Helper()
	s, err := a.get(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (a *swarmAPI) getSummary() (apiSummary, error) {
	var body struct {
		Summary apiSummary `json:"summary"`
	}
	err := a.fetch("/api/v1/status", &body)
	return body.Summary, err
}

func (a *swarmAPI) summary(t *testing.T) apiSummary {
	t.Helper()
	s, err := a.getSummary()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// settled reports whether every task of a service mounts its newest
// generation, was probed at level, and the service runs want tasks.
func settled(s swarmService, level string, want int) (bool, string) {
	var st []string
	ok := len(s.Tasks) == want && s.Generation > 0 && s.Mounted == s.Generation
	for _, t := range s.Tasks {
		st = append(st, fmt.Sprintf("%s:%s/gen%d/%s", t.Task, t.State, t.Generation, t.Observed))
		ok = ok && t.State == "running" && t.Generation == s.Generation && t.Observed == level
	}
	return ok, fmt.Sprintf("%s gen %d mounted %d tasks %v", s.Identity, s.Generation, s.Mounted, st)
}

// allAt is a WaitFor condition: every named service is settled at level.
func (a *swarmAPI) allAt(level string, names ...string) func() (bool, string) {
	want := map[string]int{"web": 2, "sampler": 1}
	return func() (bool, string) {
		var msgs []string
		for _, n := range names {
			s, err := a.get(n)
			if err != nil {
				return false, err.Error()
			}
			ok, msg := settled(s, level, want[n])
			if !ok {
				return false, msg
			}
			msgs = append(msgs, msg)
		}
		return true, strings.Join(msgs, "; ")
	}
}

// rolledOut is a WaitFor condition: a service is settled at mtls and every
// task serves one certificate that is not old.
func (a *swarmAPI) rolledOut(name, old string) func() (bool, string) {
	return func() (bool, string) {
		s, err := a.get(name)
		if err != nil {
			return false, err.Error()
		}
		ok, msg := settled(s, "mtls", 2)
		for _, t := range s.Tasks {
			ok = ok && t.Served != old && t.Served == s.Tasks[0].Served
		}
		return ok, msg
	}
}

// containerOfTask finds the container of a task on this node.
func (s *Swarm) containerOfTask(t *testing.T, serviceID, taskID string) string {
	t.Helper()
	for _, c := range s.Containers(t, serviceID) {
		if c.Labels["com.docker.swarm.task.id"] == taskID {
			return c.ID
		}
	}
	t.Fatalf("no container for task %s", taskID)
	return ""
}

// window is a span of time in which no request may fail.
type window struct{ from, to time.Time }

// failedCalls counts the sampler's "call to peer failed" log lines inside
// the windows, over every sampler container (replaced ones included).
func (s *Swarm) failedCalls(t *testing.T, samplerID string, ws []window) int {
	t.Helper()
	n := 0
	for _, c := range s.Containers(t, samplerID) {
		rc, err := s.h.Docker.ContainerLogs(t.Context(), c.ID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
		if err != nil {
			t.Fatalf("logs of sampler %s: %v", c.ID, err)
		}
		var out bytes.Buffer
		_, err = stdcopy.StdCopy(&out, &out, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading sampler logs: %v", err)
		}
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			var l struct {
				Time  time.Time `json:"time"`
				Msg   string    `json:"msg"`
				Error string    `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != "call to peer failed" {
				continue
			}
			for _, w := range ws {
				if !l.Time.Before(w.from) && !l.Time.After(w.to) {
					n++
					t.Logf("failed request at %s: %s", l.Time.Format(time.RFC3339Nano), l.Error)
				}
			}
		}
	}
	return n
}

// keysNowhere checks that no private key is in the JSON of `docker
// inspect` of any service, task, container, secret or config (configs'
// data decoded too), nor in any file of any volume.
func (s *Swarm) keysNowhere(t *testing.T, stack string) {
	t.Helper()
	ctx := t.Context()
	d := s.h.Docker
	var raws [][]byte
	svcs, _ := d.ServiceList(ctx, swarm.ServiceListOptions{})
	for _, v := range svcs {
		_, raw, _ := d.ServiceInspectWithRaw(ctx, v.ID, swarm.ServiceInspectOptions{})
		raws = append(raws, raw)
	}
	tasks, _ := d.TaskList(ctx, swarm.TaskListOptions{})
	for _, v := range tasks {
		_, raw, _ := d.TaskInspectWithRaw(ctx, v.ID)
		raws = append(raws, raw)
	}
	cs, _ := d.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id"))})
	for _, v := range cs {
		_, raw, _ := d.ContainerInspectWithRaw(ctx, v.ID, false)
		raws = append(raws, raw)
	}
	secrets, _ := d.SecretList(ctx, swarm.SecretListOptions{})
	for _, v := range secrets {
		_, raw, _ := d.SecretInspectWithRaw(ctx, v.ID)
		raws = append(raws, raw)
	}
	configs, _ := d.ConfigList(ctx, swarm.ConfigListOptions{})
	for _, v := range configs {
		c, raw, _ := d.ConfigInspectWithRaw(ctx, v.ID)
		raws = append(raws, raw, c.Spec.Data)
	}
	for _, raw := range raws {
		if bytes.Contains(raw, []byte("PRIVATE KEY")) {
			t.Errorf("a private key in docker inspect output: %.200s", raw)
		}
	}
	inspected := len(raws)
	files := s.volumesHoldNoKey(t, stack)
	t.Logf("keys: none in %d inspect outputs (%d services, %d tasks, %d containers, %d secrets, %d configs) nor in %d files of every volume",
		inspected, len(svcs), len(tasks), len(cs), len(secrets), len(configs), files)
	if len(secrets) == 0 || len(tasks) == 0 {
		t.Errorf("nothing to check: %d secrets, %d tasks", len(secrets), len(tasks))
	}
}

// volumesHoldNoKey reads every file of every volume the swarm uses (the
// test's own, and any a task container mounts) through its mountpoint
// (the engine is local) and returns how many it read.
func (s *Swarm) volumesHoldNoKey(t *testing.T, stack string) int {
	t.Helper()
	ctx := t.Context()
	names := map[string]bool{}
	vols, err := s.h.Docker.VolumeList(ctx, volume.ListOptions{Filters: filters.NewArgs(filters.Arg("label", LabelScope+"="+stack))})
	if err != nil {
		t.Fatalf("listing volumes: %v", err)
	}
	for _, v := range vols.Volumes {
		names[v.Name] = true
	}
	cs, err := s.h.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id"))})
	if err != nil {
		t.Fatalf("listing task containers: %v", err)
	}
	for _, c := range cs {
		for _, m := range c.Mounts {
			if m.Type == "volume" {
				names[m.Name] = true
			}
		}
	}
	n := 0
	for name := range names {
		v, err := s.h.Docker.VolumeInspect(ctx, name)
		if err != nil {
			t.Fatalf("inspecting volume %s: %v", name, err)
		}
		n += filesWithoutKey(t, v.Name, v.Mountpoint)
	}
	if n == 0 {
		t.Fatalf("no file read in volumes %v: cannot check them (is the engine remote?)", slices.Sorted(maps.Keys(names)))
	}
	return n
}

// filesWithoutKey reads every regular file under dir, flags any holding a
// private key, and returns how many it read.
func filesWithoutKey(t *testing.T, vol, dir string) int {
	n := 0
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || !e.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		n++
		if bytes.Contains(data, []byte("PRIVATE KEY")) {
			t.Errorf("a private key in volume %s: %s", vol, path)
		}
		return nil
	})
	if err != nil {
		t.Errorf("walking volume %s: %v", vol, err)
	}
	return n
}

// measureLatency measures secret creation and service updates on this
// engine, for the multi-node section of docs/swarm.md. The updates go to
// serviceID, a service outside the stack with no task, so nothing else
// updates it meanwhile and the figure is the manager's alone (Raft commit
// and the API), not a rollout's.
func (s *Swarm) measureLatency(t *testing.T, serviceID string) (create, update []time.Duration) {
	t.Helper()
	ctx := t.Context()
	d := s.h.Docker
	data := bytes.Repeat([]byte("x"), 1200) // a certificate's size
	for i := range 20 {
		start := time.Now()
		resp, err := d.SecretCreate(ctx, swarm.SecretSpec{Annotations: swarm.Annotations{Name: fmt.Sprintf("%s-lat-%d", s.Network, i),
			Labels: s.h.labels(t, "secret")}, Data: data})
		create = append(create, time.Since(start))
		if err != nil {
			t.Fatalf("creating a secret: %v", err)
		}
		_ = d.SecretRemove(ctx, resp.ID)
	}
	for i := range 10 {
		svc, _, err := d.ServiceInspectWithRaw(ctx, serviceID, swarm.ServiceInspectOptions{})
		if err != nil {
			t.Fatalf("inspecting: %v", err)
		}
		spec := svc.Spec
		spec.Labels = maps.Clone(spec.Labels)
		spec.Labels["crank.e2e.latency"] = fmt.Sprint(i)
		start := time.Now()
		if _, err := d.ServiceUpdate(ctx, serviceID, svc.Version, spec, swarm.ServiceUpdateOptions{}); err != nil {
			t.Fatalf("updating: %v", err)
		}
		update = append(update, time.Since(start))
	}
	return create, update
}

// removeAndCount removes the managed services and waits until the
// controller has removed every bundle secret and manifest of theirs.
func (s *Swarm) removeAndCount(t *testing.T, api *swarmAPI, ids []string, f *swarmFigures) {
	t.Helper()
	ctx := t.Context()
	for _, id := range ids {
		if err := s.h.Docker.ServiceRemove(ctx, id); err != nil {
			t.Fatalf("removing service %s: %v", id, err)
		}
	}
	label := filters.NewArgs(filters.Arg("label", "crank.security.managed=bundle"))
	f.cleanup = WaitFor(t, 2*time.Minute, func() (bool, string) {
		secrets, err := s.h.Docker.SecretList(ctx, swarm.SecretListOptions{Filters: label})
		if err != nil {
			return false, err.Error()
		}
		configs, err := s.h.Docker.ConfigList(ctx, swarm.ConfigListOptions{Filters: label})
		if err != nil {
			return false, err.Error()
		}
		f.secretsLeft = len(secrets) + len(configs)
		return f.secretsLeft == 0, fmt.Sprintf("%d bundle secrets and %d manifests left", len(secrets), len(configs))
	})
}

// swarmFigures are the measurements the test reports.
type swarmFigures struct {
	firstMTLS, killReplaced, renewal, rollover, cleanup time.Duration
	controllerBack                                      time.Duration
	windows                                             []window
	failed, secretsLeft                                 int
	secretCreate, serviceUpdate                         []time.Duration
}

func (f *swarmFigures) report(t *testing.T) {
	sampled := time.Duration(0)
	for _, w := range f.windows {
		sampled += w.to.Sub(w.from)
	}
	t.Logf("SWARM FIGURES: first mtls %s | task kill -> replacement at mtls %s | renewal rollout %s | CA rollover %s | controller task lost -> back with the same CA %s | "+
		"failed requests %d of ~%d sampled (every 200ms over %s) | bundle secrets left after the services went %d (in %s) | "+
		"secret create p50 %s max %s | service update p50 %s max %s",
		f.firstMTLS.Round(time.Millisecond), f.killReplaced.Round(time.Millisecond), f.renewal.Round(time.Millisecond),
		f.rollover.Round(time.Millisecond), f.controllerBack.Round(time.Millisecond), f.failed, int(sampled/(200*time.Millisecond)), sampled.Round(time.Second),
		f.secretsLeft, f.cleanup.Round(time.Millisecond),
		pct(f.secretCreate, 50), pct(f.secretCreate, 100), pct(f.serviceUpdate, 50), pct(f.serviceUpdate, 100))
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := min(len(s)-1, (len(s)-1)*p/100)
	return s[i].Round(100 * time.Microsecond)
}

func keys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// dumpOnFailure logs the controller's last log lines and the swarm status
// when the test failed, before the swarm is torn down.
func (s *Swarm) dumpOnFailure(t *testing.T, controllerID string, api *swarmAPI) {
	if !t.Failed() {
		return
	}
	var body json.RawMessage
	if err := api.fetch("/api/v1/swarm", &body); err == nil {
		t.Logf("swarm status at failure: %s", body)
	}
	for _, c := range s.Containers(t, controllerID) {
		all, _, err := s.h.logs(c.ID)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(all), "\n")
		t.Logf("controller %s, last %d of %d log lines:\n%s", c.ID[:12], min(120, len(lines)), len(lines),
			strings.Join(lines[max(0, len(lines)-120):], "\n"))
	}
}
