//go:build unix

package reconcile

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// BenchmarkReconcileAtScale measures one reconcile while the state holds a
// record for each of n containers, to find the controller's own limit
// beyond what two cores of real engine can create (make bench-storm). The
// engine and the prober are in-process fakes; the state store, the CA and
// the certs volume are the real ones in a temp dir, since what grows with n
// is the work done on them.
//
//   - unchanged: a running container whose bundle is valid and whose probe
//     shows what is desired, as on every periodic resync;
//   - create: a new container of a new service: issue, write, record, as on
//     every create of a storm.
//
// ns/op is wall time, fsyncs included; cpu-ns/op is the process's CPU
// (user+system, GC included) per reconcile, the figure the storm's CPU per
// container compares with. Flat figures from 100 to 10,000 containers means the cost per container is
// flat; a resync of n unchanged containers costs n times unchanged's.
//
//	go test -run '^$' -bench BenchmarkReconcileAtScale -benchtime 200x ./reconcile/
func BenchmarkReconcileAtScale(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("containers=%d", n), func(b *testing.B) {
			s := newScaleStack(b, n)
			b.Run("unchanged", func(b *testing.B) {
				b.ReportAllocs()
				cpu := startCPU(b)
				i := 0
				for b.Loop() {
					s.reconcile(b, s.hot[i%len(s.hot)])
					i++
				}
				cpu.report()
			})
			b.Run("create", func(b *testing.B) {
				b.ReportAllocs()
				cpu := startCPU(b)
				for b.Loop() {
					b.StopTimer()
					cpu.pause()
					c := s.engine.add(s.next())
					cpu.resume()
					b.StartTimer()
					s.reconcile(b, c.ID)
					b.StopTimer()
					cpu.pause()
					// Back to n records, so every iteration sees the same n.
					s.engine.remove(c.ID)
					if err := s.store.Delete(c.ID); err != nil {
						b.Fatal(err)
					}
					cpu.resume()
					b.StartTimer()
				}
				cpu.report()
			})
		})
	}
}

// scaleHot is how many containers the unchanged case cycles over: each has
// a real bundle on disk. The other n-scaleHot have records only, copied
// from a real one, which is all a reconcile of someone else can see of them.
const scaleHot = 100

// scaleStack is one controller's worth of state with n containers.
type scaleStack struct {
	r      *ContainerReconciler
	engine *scaleEngine
	store  *state.Store
	hot    []string // IDs the unchanged case reconciles
	seq    int
}

func newScaleStack(b *testing.B, n int) *scaleStack {
	b.Helper()
	dir := b.TempDir()
	now := time.Now() // the volume stamps generations with the real clock
	auth, _, err := certs.OpenAuthority(filepath.Join(dir, "ca"), certs.AuthorityOptions{}, now)
	if err != nil {
		b.Fatalf("opening authority: %v", err)
	}
	vol, err := certs.OpenVolume(filepath.Join(dir, "certs"))
	if err != nil {
		b.Fatalf("opening volume: %v", err)
	}
	b.Cleanup(func() { vol.Close() })
	store, err := state.Open(filepath.Join(dir, "state"), state.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatalf("opening state: %v", err)
	}
	b.Cleanup(func() { store.Close() })
	s := &scaleStack{engine: &scaleEngine{byID: map[string]dockerwatch.Container{}}, store: store}
	s.r = &ContainerReconciler{
		Containers: s.engine, Volume: vol, Authority: auth, Records: store, Identities: store,
		Scope: Scope{Project: "storm"}, TrustDomain: "crank.local",
		Issue:  certs.IssueOptions{Lifetime: 90 * 24 * time.Hour},
		Prober: scaleProber{}, ProbeInterval: 30 * time.Second,
		Levels: Policy{Environment: Development, Mode: Observe, ProductionMinimum: probe.MTLS, RestartBudget: 3,
			BackoffBase: 30 * time.Second, BackoffMax: 10 * time.Minute, StartGrace: 10 * time.Second, ReloadGrace: 30 * time.Second},
	}
	s.populate(b, n)
	return s
}

// populate creates min(n, scaleHot) containers through the reconciler, so
// their bundles and records are real, starts their processes after their
// bundles (as a create then start does), and copies one of their records
// for the rest.
func (s *scaleStack) populate(b *testing.B, n int) {
	b.Helper()
	for range min(n, scaleHot) {
		c := s.engine.add(s.next())
		s.reconcile(b, c.ID)
		s.hot = append(s.hot, c.ID)
	}
	started := time.Now()
	for _, id := range s.hot {
		s.engine.start(id, started)
	}
	for _, id := range s.hot {
		s.reconcile(b, id) // probed once as running: settled
	}
	model, ok, err := s.store.Get(s.hot[0])
	if err != nil || !ok {
		b.Fatalf("reading a record to copy: %v %v", ok, err)
	}
	for range n - len(s.hot) {
		c := s.engine.add(s.next())
		rec := model
		rec.ContainerID, rec.ContainerName, rec.Service = c.ID, c.Name, c.Service
		rec.DNSNames = []string{c.Service, c.Name, "localhost"}
		if err := s.store.Put(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// next is the container the next compose service would get: its own
// service, on the project's network, running the test service's ports.
func (s *scaleStack) next() dockerwatch.Container {
	s.seq++
	service := fmt.Sprintf("s%05d", s.seq)
	return dockerwatch.Container{
		ID: fmt.Sprintf("%064x", s.seq), Name: "storm-" + service + "-1", Project: "storm", Service: service,
		Labels: map[string]string{}, State: dockerwatch.StateCreated, Created: time.Now(),
		Env: map[string]string{"SERVICE_NAME": service},
		Networks: map[string]dockerwatch.Network{"storm_default": {
			IPAddress: fmt.Sprintf("10.%d.%d.%d", s.seq>>16&255, s.seq>>8&255, s.seq&255), Aliases: []string{service}}},
		ExposedPorts: []dockerwatch.Port{{Port: 8443, Proto: "tcp"}, {Port: 8080, Proto: "tcp"}},
	}
}

func (s *scaleStack) reconcile(b *testing.B, id string) {
	if _, err := s.r.Reconcile(context.Background(), id); err != nil {
		b.Fatalf("reconciling %s: %v", id[len(id)-5:], err)
	}
}

// scaleEngine is the in-process engine: Inspect answers from a map.
type scaleEngine struct {
	mu   sync.Mutex
	byID map[string]dockerwatch.Container
}

func (e *scaleEngine) Inspect(_ context.Context, id string) (dockerwatch.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, ok := e.byID[id]
	if !ok {
		return dockerwatch.Container{}, fmt.Errorf("inspecting %s: %w", id, dockerwatch.ErrNotFound)
	}
	return c, nil
}

func (e *scaleEngine) add(c dockerwatch.Container) dockerwatch.Container {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.byID[c.ID] = c
	return c
}

func (e *scaleEngine) start(id string, at time.Time) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.byID[id]
	c.State, c.StartedAt = dockerwatch.StateRunning, at
	e.byID[id] = c
}

func (e *scaleEngine) remove(id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.byID, id)
}

// scaleProber sees every container serve the bundle it was given, over
// mTLS: the probe itself costs nothing here, so what is measured is the
// reconcile around it.
type scaleProber struct{}

func (scaleProber) Probe(_ context.Context, t probe.Target) probe.Result {
	return probe.Result{Level: probe.MTLS, ServedFingerprint: t.ExpectedFingerprint,
		ServedNotAfter: time.Now().Add(90 * 24 * time.Hour), At: time.Now()}
}

// cpuMeter adds the process's CPU time per iteration to a benchmark's
// figures, leaving out what is done between pause and resume.
type cpuMeter struct {
	b       *testing.B
	used    time.Duration
	started time.Duration
}

func startCPU(b *testing.B) *cpuMeter {
	m := &cpuMeter{b: b}
	m.resume()
	return m
}

func (m *cpuMeter) pause()  { m.used += processCPU() - m.started }
func (m *cpuMeter) resume() { m.started = processCPU() }

func (m *cpuMeter) report() {
	m.pause()
	m.b.ReportMetric(float64(m.used.Nanoseconds())/float64(m.b.N), "cpu-ns/op")
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
