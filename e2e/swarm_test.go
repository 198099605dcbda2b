//go:build e2e

package e2e

import (
	"crypto/rand"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// TestSwarm runs the controller as a swarm service on a single-node swarm
// and shows, on the real engine: first deploy reaches mtls; a task killed
// on purpose is replaced and keeps its identity; a leaf renewal and a CA
// rollover complete by rolling updates with no failed request at 2
// replicas (a sampler task calls the service every 200 ms over the
// overlay); a controller task lost (its CA directory is a tmpfs) comes
// back with the same CA from the swarm; no key in any volume or in `docker
// inspect`; no secret left once the services are gone. It logs the figures
// docs/swarm.md quotes.
//
// Not parallel: swarm init changes the engine's global state, so Go runs
// it before the parallel tests start.
func TestSwarm(t *testing.T) {
	h := H(t)
	ctrlImage, svcImage := h.ControllerImage(t), h.ServiceImage(t)
	sw := h.InitSwarm(t)
	stack := h.Project(t)
	f := &swarmFigures{}

	api := sw.startController(t, ctrlImage, stack)
	web := sw.CreateService(t, testService(stack, "web", svcImage, 2))
	sampler := sw.CreateService(t, slowToStop(testService(stack, "sampler", svcImage, 1, "CALL_URL=https://web:8443/health", "CALL_INTERVAL=200ms")))
	f.firstMTLS = WaitFor(t, 3*time.Minute, api.allAt("mtls", "web", "sampler"))
	t.Logf("first deploy: every task of web (2) and sampler (1) serves mtls %s after the services were created", f.firstMTLS.Round(time.Millisecond))

	sw.killKeepsIdentity(t, api, web, f)
	sw.renewal(t, api, f)
	sw.rollover(t, api, f)
	sw.controllerLoss(t, api, f)
	f.failed = sw.failedCalls(t, sampler, f.windows)

	sw.keysNowhere(t, stack)
	idle := sw.CreateService(t, SwarmService{Name: stack + "-latency", Image: svcImage, Replicas: 0, Env: []string{"SERVICE_NAME=latency"}})
	f.secretCreate, f.serviceUpdate = sw.measureLatency(t, idle)
	sw.removeAndCount(t, api, []string{web, sampler}, f)
	f.report(t)
	if f.failed > 0 {
		t.Errorf("got %d failed requests during the renewal and the rollover, want 0", f.failed)
	}
}

// startController runs the controller as a swarm service on the overlay,
// with its KEK secret, a state volume and a tmpfs for the CA's working
// copy, and its HTTP port published on the host; it returns a client of
// its API once it is ready.
func (s *Swarm) startController(t *testing.T, image, stack string) *swarmAPI {
	kek := make([]byte, 32)
	_, _ = rand.Read(kek)
	kekID := s.CreateSecret(t, stack+"-ca-kek", kek)
	vol := s.h.NewVolume(t)
	port := FreeLoopbackPort(t)
	id := s.CreateService(t, SwarmService{
		Name: stack + "_controller", Image: image, Replicas: 1,
		Labels: map[string]string{"com.docker.stack.namespace": stack},
		Env: []string{
			"CRANK_ORCHESTRATOR=swarm", "CRANK_PROJECT=" + stack, "CRANK_LOG_FORMAT=json",
			"CRANK_PROBE_INTERVAL=2s", "CRANK_ACTION_INTERVAL=1s", "CRANK_START_GRACE=2s", "CRANK_RESTART_BACKOFF=5s",
			"CRANK_LEAF_LIFETIME=150s", "CRANK_RENEW_FRACTION=0.4", "CRANK_CA_ROTATE_INTERVAL=1s",
			"CRANK_RESYNC_INTERVAL=30s", "CRANK_WATCHDOG_INTERVAL=10s",
		},
		Spec: func(spec *swarm.ServiceSpec) {
			cs := spec.TaskTemplate.ContainerSpec
			cs.Mounts = []mount.Mount{
				{Type: mount.TypeBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"},
				{Type: mount.TypeVolume, Source: vol, Target: "/state"},
				{Type: mount.TypeTmpfs, Target: "/run/crank-ca", TmpfsOptions: &mount.TmpfsOptions{Mode: 0o700}},
			}
			cs.Secrets = []*swarm.SecretReference{{SecretID: kekID, SecretName: stack + "-ca-kek",
				File: &swarm.SecretReferenceFileTarget{Name: "crank-ca-kek", UID: "0", GID: "0", Mode: 0o400}}}
			spec.TaskTemplate.Placement = &swarm.Placement{Constraints: []string{"node.role == manager"}}
			spec.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{Protocol: "tcp", TargetPort: 9090,
				PublishedPort: uint32(port), PublishMode: swarm.PortConfigPublishModeHost}}}
		},
	})
	api := &swarmAPI{port: port, stateVolume: vol, controllerID: id}
	t.Cleanup(func() { s.dumpOnFailure(t, id, api) })
	WaitFor(t, 2*time.Minute, api.ready)
	return api
}

// testService is a testservice replica set in the stack: load-once (like
// uvicorn, so a new bundle needs new tasks), with an mTLS healthcheck, so
// the engine routes to a task only once it serves its bundle.
//
// Its endpoint mode is dnsrr: this machine's kernel has no IPVS
// (/proc/net/ip_vs), so a swarm VIP routes nothing here ("no route to
// host"); with dnsrr the name resolves to the tasks' own addresses, which
// the engine adds once a task is healthy and removes before stopping it.
func testService(stack, name, image string, replicas uint64, env ...string) SwarmService {
	return SwarmService{
		Name: stack + "_" + name, Image: image, Replicas: replicas, Aliases: []string{name},
		Labels: map[string]string{"com.docker.stack.namespace": stack},
		Env:    append([]string{"SERVICE_NAME=" + name, "RELOAD=off"}, env...),
		Health: []string{"CMD", "/testservice", "healthcheck"},
		Spec: func(spec *swarm.ServiceSpec) {
			spec.EndpointSpec = &swarm.EndpointSpec{Mode: swarm.ResolutionModeDNSRR}
		},
	}
}

// slowToStop makes a service's tasks go on for 3 s after the engine asks
// them to stop, as a worker that finishes its job does, still calling its
// peers with the bundle it started with: the engine sends SIGWINCH, which
// the process ignores, then SIGKILL after the grace period. A rollout's
// replaced task is then alive well after its successor runs, and a CA
// rollover must wait for it.
func slowToStop(o SwarmService) SwarmService {
	spec := o.Spec
	o.Spec = func(s *swarm.ServiceSpec) {
		if spec != nil {
			spec(s)
		}
		s.TaskTemplate.ContainerSpec.StopSignal = "SIGWINCH"
		s.TaskTemplate.ContainerSpec.StopGracePeriod = ptr(3 * time.Second)
	}
	return o
}

// killKeepsIdentity kills one web task's container: the engine replaces
// the task, and the new one serves the same certificate (same secrets, same
// identity) without the controller issuing anything.
func (s *Swarm) killKeepsIdentity(t *testing.T, api *swarmAPI, webID string, f *swarmFigures) {
	before := api.service(t, "web")
	victim := before.Tasks[0]
	cid := s.containerOfTask(t, webID, victim.TaskID)
	start := time.Now()
	if err := s.h.Docker.ContainerKill(t.Context(), cid, "KILL"); err != nil {
		t.Fatalf("killing task %s: %v", victim.Task, err)
	}
	f.killReplaced = WaitFor(t, 2*time.Minute, func() (bool, string) {
		svc, err := api.get("web")
		if err != nil {
			return false, err.Error()
		}
		for _, task := range svc.Tasks {
			if task.Task == victim.Task && task.TaskID != victim.TaskID && task.Observed == "mtls" {
				ok := task.Served == victim.Served && svc.Generation == before.Generation
				return ok, fmt.Sprintf("replacement %s serves %.12s at generation %d", task.TaskID, task.Served, svc.Generation)
			}
		}
		return false, "no replacement task serving mtls yet"
	})
	t.Logf("task kill: %s replaced and serving the same certificate (%.12s, generation %d) after %s",
		victim.Task, victim.Served, before.Generation, time.Since(start).Round(time.Millisecond))
}

// renewal waits for web's leaf renewal (the controller renews at 0.4 of a
// 150 s lifetime) to be rolled out: every task mounts the new generation,
// serves its new certificate, and is at mtls.
func (s *Swarm) renewal(t *testing.T, api *swarmAPI, f *swarmFigures) {
	before := api.service(t, "web")
	var from time.Time
	WaitFor(t, 3*time.Minute, func() (bool, string) {
		svc, err := api.get("web")
		if err != nil {
			return false, err.Error()
		}
		if svc.Generation > before.Generation && from.IsZero() {
			from = time.Now()
		}
		return svc.Generation > before.Generation, fmt.Sprintf("generation %d", svc.Generation)
	})
	f.windows = append(f.windows, window{from: from.Add(-2 * time.Second)})
	f.renewal = WaitFor(t, 2*time.Minute, api.rolledOut("web", before.Tasks[0].Served))
	f.windows[len(f.windows)-1].to = time.Now()
	t.Logf("leaf renewal: generation %d -> %d rolled out to both web tasks in %s", before.Generation, api.service(t, "web").Generation, f.renewal.Round(time.Millisecond))
}

// rollover asks for a CA rollover and waits for it to finish: overlap,
// reissue and retire, each a rolling update of every service.
func (s *Swarm) rollover(t *testing.T, api *swarmAPI, f *swarmFigures) {
	subject := api.summary(t).CASubject
	webFP := api.service(t, "web").Tasks[0].Served
	start := time.Now()
	s.h.WriteVolumeFile(t, api.stateVolume, "ca-rotate-request", fmt.Appendf(nil, `{"requested_at":%q}`+"\n", start.UTC().Format(time.RFC3339)), 0o600)
	f.windows = append(f.windows, window{from: start})
	seen := map[string]bool{}
	WaitFor(t, 4*time.Minute, func() (bool, string) {
		sum, err := api.getSummary()
		if err != nil {
			return false, err.Error()
		}
		seen[sum.CARollover.Phase] = true
		done := sum.CASubject != subject && sum.CARollover.Phase == "idle" && seen["overlap"]
		return done, fmt.Sprintf("phase %s (%d/%d), CA %s", sum.CARollover.Phase, sum.CARollover.Done, sum.CARollover.Total, sum.CASubject)
	})
	WaitFor(t, time.Minute, api.rolledOut("web", webFP))
	WaitFor(t, time.Minute, api.allAt("mtls", "web", "sampler"))
	f.rollover = time.Since(start)
	f.windows[len(f.windows)-1].to = time.Now()
	t.Logf("CA rollover: overlap, reissue and retire rolled out in %s; phases seen %v", f.rollover.Round(time.Millisecond), keys(seen))
}

// controllerLoss kills the controller's task: its replacement starts with
// an empty CA directory (a tmpfs, as on a node it never ran on), restores
// the CA from its sealed backup in the swarm, and finds every bundle
// current: same CA, no new generation, every task still at mtls.
func (s *Swarm) controllerLoss(t *testing.T, api *swarmAPI, f *swarmFigures) {
	subject := api.summary(t).CASubject
	// The rollover reports idle at the retire; each service's trust bundle
	// shrinks in one more generation after that. Wait until the
	// generations have stood still for a while, every one mounted.
	gens := map[string]int{}
	var stillSince time.Time
	WaitFor(t, 2*time.Minute, func() (bool, string) {
		now := map[string]int{}
		for _, n := range []string{"web", "sampler"} {
			svc := api.service(t, n)
			if svc.Mounted != svc.Generation {
				return false, fmt.Sprintf("%s mounts generation %d of %d", n, svc.Mounted, svc.Generation)
			}
			now[n] = svc.Generation
		}
		if !maps.Equal(now, gens) {
			gens, stillSince = now, time.Now()
		}
		return time.Since(stillSince) >= 10*time.Second, fmt.Sprintf("generations %v since %s", gens, stillSince.Format(time.StampMilli))
	})
	var victim string
	for _, c := range s.Containers(t, api.controllerID) {
		if c.State == "running" {
			victim = c.ID
		}
	}
	start := time.Now()
	if err := s.h.Docker.ContainerKill(t.Context(), victim, "KILL"); err != nil {
		t.Fatalf("killing the controller: %v", err)
	}
	f.controllerBack = WaitFor(t, 2*time.Minute, func() (bool, string) {
		sum, err := api.getSummary()
		if err != nil {
			return false, err.Error()
		}
		ok, msg := api.allAt("mtls", "web", "sampler")()
		return ok && sum.CASubject == subject, fmt.Sprintf("CA %s; %s", sum.CASubject, msg)
	})
	restored := false
	for _, c := range s.Containers(t, api.controllerID) {
		if c.ID != victim && c.State == "running" {
			restored = strings.Contains(s.h.Logs(t, c.ID), "CA restored from its sealed backup in the swarm")
		}
	}
	if !restored {
		t.Errorf("the new controller task did not log that it restored the CA from the swarm")
	}
	for n, g := range gens {
		if got := api.service(t, n).Generation; got != g {
			t.Errorf("%s: got generation %d after the controller came back, want %d (no reissue: the CA is the same)", n, got, g)
		}
	}
	t.Logf("controller loss: a new controller task restored the CA from the swarm and found every bundle current in %s",
		time.Since(start).Round(time.Millisecond))
}
