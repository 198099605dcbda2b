package rotation

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// fakeStore is the state store in memory.
type fakeStore struct {
	mu   sync.Mutex
	meta map[string][]byte
	recs map[string]state.Record
}

func newFakeStore() *fakeStore {
	return &fakeStore{meta: map[string][]byte{}, recs: map[string]state.Record{}}
}

func (s *fakeStore) GetMeta(key string, v any) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raw, ok := s.meta[key]
	if !ok {
		return false, nil
	}
	return true, json.Unmarshal(raw, v)
}

func (s *fakeStore) PutMeta(key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.meta[key] = raw
	return nil
}

func (s *fakeStore) List() ([]state.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []state.Record
	for _, r := range s.recs {
		out = append(out, r)
	}
	return out, nil
}

func (s *fakeStore) storedMeta(t *testing.T) Meta {
	t.Helper()
	var m Meta
	if _, err := s.GetMeta(MetaKey, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (s *fakeStore) update(id string, f func(r *state.Record)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.recs[id]
	f(&r)
	s.recs[id] = r
}

// fakeVolume holds bundles by service.
type fakeVolume struct {
	mu      sync.Mutex
	bundles map[string]*certs.BundleFiles
}

func (v *fakeVolume) ReadBundle(service string) (*certs.BundleFiles, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	b, ok := v.bundles[service]
	if !ok {
		return nil, fmt.Errorf("reading bundle of %s: %w", service, fs.ErrNotExist)
	}
	c := *b
	return &c, nil
}

// fakeDocker holds containers by ID.
type fakeDocker struct {
	mu  sync.Mutex
	cts map[string]dockerwatch.Container
}

func (d *fakeDocker) Inspect(_ context.Context, id string) (dockerwatch.Container, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.cts[id]
	if !ok {
		return c, fmt.Errorf("inspecting %s: %w", id, dockerwatch.ErrNotFound)
	}
	return c, nil
}

// fakeProber records the credentials it was given.
type fakeProber struct {
	mu    sync.Mutex
	cert  tls.Certificate
	roots *x509.CertPool
	sets  int
}

func (p *fakeProber) SetCredentials(cert tls.Certificate, roots *x509.CertPool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cert, p.roots, p.sets = cert, roots, p.sets+1
}

func (p *fakeProber) issuer(t *testing.T) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	leaf, err := x509.ParseCertificate(p.cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Issuer.CommonName
}

// logRecorder is a slog.Handler keeping every record's level and message.
type logRecorder struct {
	mu    sync.Mutex
	lines []logLine
}

type logLine struct {
	level slog.Level
	msg   string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, logLine{r.Level, r.Message})
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many lines at level contain substr.
func (l *logRecorder) count(level slog.Level, substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if line.level == level && strings.Contains(line.msg, substr) {
			n++
		}
	}
	return n
}

func (l *logRecorder) dump() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var b strings.Builder
	for _, line := range l.lines {
		fmt.Fprintf(&b, "%s %s\n", line.level, line.msg)
	}
	return b.String()
}

// stack is a controller's worth of fakes around a real Authority in a temp
// dir, with a clock the test moves, and helpers that play the reconciler's
// and the services' part.
type stack struct {
	t      *testing.T
	now    time.Time
	dir    string
	a      *certs.Authority
	store  *fakeStore
	volume *fakeVolume
	docker *fakeDocker
	prober *fakeProber
	logs   *logRecorder
	rot    *Rotator
}

type stackOption func(*stackConfig)

type stackConfig struct {
	caLifetime time.Duration
	services   []string
}

func withCALifetime(d time.Duration) stackOption { return func(c *stackConfig) { c.caLifetime = d } }
func withServices(s ...string) stackOption       { return func(c *stackConfig) { c.services = s } }

// newStack opens a CA at t0 and one running container per service
// ("<service>-1"), each with a bundle from the CA, probed at mtls.
func newStack(t *testing.T, opts ...stackOption) *stack {
	t.Helper()
	cfg := stackConfig{caLifetime: 1000 * time.Hour, services: []string{"web", "api"}}
	for _, o := range opts {
		o(&cfg)
	}
	dir := t.TempDir()
	a, _, err := certs.OpenAuthority(dir, certs.AuthorityOptions{Lifetime: cfg.caLifetime}, t0)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, now: t0, dir: dir, a: a, store: newFakeStore(),
		volume: &fakeVolume{bundles: map[string]*certs.BundleFiles{}},
		docker: &fakeDocker{cts: map[string]dockerwatch.Container{}},
		prober: &fakeProber{}, logs: &logRecorder{}}
	s.rot = s.newRotator()
	for _, svc := range cfg.services {
		id := svc + "-1"
		s.docker.cts[id] = dockerwatch.Container{ID: id, Name: id, State: dockerwatch.StateRunning, StartedAt: t0}
		s.store.recs[id] = state.Record{ContainerID: id, ContainerName: id, Service: svc}
		s.reissue(svc)
		s.restart(id)
		s.probe(id, "mtls")
	}
	return s
}

func (s *stack) newRotator() *Rotator {
	return &Rotator{Authority: s.a, Store: s.store, Volume: s.volume, Containers: s.docker, Prober: s.prober,
		StateDir: s.dir, Log: slog.New(s.logs), Clock: func() time.Time { return s.now }}
}

func (s *stack) advance(d time.Duration) { s.now = s.now.Add(d) }

func (s *stack) step() {
	s.t.Helper()
	if err := s.rot.Step(context.Background()); err != nil {
		s.t.Fatalf("step: %v", err)
	}
}

// reissue plays the reconciler: a new bundle from the active CA.
func (s *stack) reissue(svc string) {
	s.t.Helper()
	b, _, err := s.a.IssueBundle(certs.Identity{Service: svc, DNSNames: []string{svc}}, certs.IssueOptions{Now: s.now})
	if err != nil {
		s.t.Fatal(err)
	}
	b.WrittenAt = s.now
	s.volume.mu.Lock()
	s.volume.bundles[svc] = b
	s.volume.mu.Unlock()
}

// writeCA plays the reconciler's trust-bundle-stale rewrite.
func (s *stack) writeCA(svc string) {
	s.volume.mu.Lock()
	defer s.volume.mu.Unlock()
	b := s.volume.bundles[svc]
	b.CA, b.WrittenAt = s.a.TrustBundle(), s.now
}

// restart plays a container restart at the current time.
func (s *stack) restart(id string) {
	s.docker.mu.Lock()
	defer s.docker.mu.Unlock()
	c := s.docker.cts[id]
	c.StartedAt = s.now
	s.docker.cts[id] = c
}

func (s *stack) stop(id string) {
	s.docker.mu.Lock()
	defer s.docker.mu.Unlock()
	c := s.docker.cts[id]
	c.State = dockerwatch.StateExited
	s.docker.cts[id] = c
}

// probe plays a probe at the current time: observed level, findings, and
// the served certificate is the one on disk.
func (s *stack) probe(id, observed string, findings ...string) {
	svc := s.store.recs[id].Service
	b, _ := s.volume.ReadBundle(svc)
	leaves, _ := certs.ParseCertificatesPEM(b.ServerCert)
	s.store.update(id, func(r *state.Record) {
		r.ObservedLevel = observed
		r.Level.Desired, r.Level.LastProbeAt, r.Level.ProbeFindings = "mtls", s.now, findings
		r.Level.ServedFingerprint = fingerprint(leaves[0])
	})
}

// servesOld plays a process still serving fp after a reissue.
func (s *stack) serves(id, fp string) {
	s.store.update(id, func(r *state.Record) { r.Level.ServedFingerprint, r.Level.LastProbeAt = fp, s.now })
}

// everyoneReloads plays a reconciler and services that do their part:
// rewrite or reissue, restart, probe.
func (s *stack) everyoneReloads(reissue bool) {
	for id, r := range s.store.recs {
		if reissue {
			s.reissue(r.Service)
		} else {
			s.writeCA(r.Service)
		}
		s.advance(time.Second)
		s.restart(id)
		s.advance(time.Second)
		s.probe(id, "mtls")
	}
}

func (s *stack) meta() Meta { return s.store.storedMeta(s.t) }
