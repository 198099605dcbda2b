package reconcile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// fakeContainers is a hand-written fake of ContainerGetter.
type fakeContainers struct {
	mu   sync.Mutex
	byID map[string]dockerwatch.Container
	err  error
}

func (f *fakeContainers) Inspect(_ context.Context, id string) (dockerwatch.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return dockerwatch.Container{}, f.err
	}
	c, ok := f.byID[id]
	if !ok {
		return dockerwatch.Container{}, fmt.Errorf("inspecting %s: %w", id, dockerwatch.ErrNotFound)
	}
	return c, nil
}

// fakeRecords is an in-memory RecordStore; embedding the interface makes any
// method the reconciler starts calling without a fake panic loudly.
type fakeRecords struct {
	RecordStore
	mu     sync.Mutex
	recs   map[string]state.Record
	owners map[string]state.IdentityOwner
	notes  int // Note calls
}

func (f *fakeRecords) ClaimIdentity(name string, o state.IdentityOwner) (state.IdentityOwner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cur, ok := f.owners[name]; ok {
		return cur, nil
	}
	f.owners[name] = o
	return o, nil
}

func (f *fakeRecords) IdentityOwnerOf(name string) (state.IdentityOwner, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.owners[name]
	return o, ok, nil
}

func (f *fakeRecords) Get(id string) (state.Record, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.recs[id]
	return r, ok, nil
}

func (f *fakeRecords) Put(r state.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[r.ContainerID] = r
	return nil
}

// Note keeps r like Put and counts it, so tests can tell a pass that
// only noted a probe from one that wrote.
func (f *fakeRecords) Note(r state.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recs[r.ContainerID] = r
	f.notes++
	return nil
}

func (f *fakeRecords) Delete(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.recs, id)
	return nil
}

func (f *fakeRecords) ListService(service string) ([]state.Record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []state.Record
	for _, r := range f.recs {
		if r.Service == service {
			out = append(out, r)
		}
	}
	return out, nil
}

type countingMetrics struct {
	mu     sync.Mutex
	issued map[string]int
	// forgotten lists the containers and then services whose series went,
	// as "container" and "service:<name>".
	forgotten []string
}

func (m *countingMetrics) Observed(Observed)         {}
func (m *countingMetrics) Remediated(string, string) {}

func (m *countingMetrics) Forget(_, container string)   { m.forgot(container) }
func (m *countingMetrics) ForgetService(service string) { m.forgot("service:" + service) }

func (m *countingMetrics) forgot(what string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgotten = append(m.forgotten, what)
}

func (m *countingMetrics) Expiry(string, string, time.Time)                  {}
func (m *countingMetrics) Renewal(string, time.Time, time.Time)              {}
func (m *countingMetrics) IdentityFindings(string, string, []IdentityReason) {}
func (m *countingMetrics) BundleLatency(time.Duration, time.Duration)        {}

func (m *countingMetrics) BundleIssued(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.issued[reason]++
}

type fixture struct {
	r       *ContainerReconciler
	docker  *fakeContainers
	records *fakeRecords
	metrics *countingMetrics
	certs   string
	now     time.Time
}

func newFixture(t *testing.T, cs ...dockerwatch.Container) *fixture {
	t.Helper()
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	auth, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, now)
	if err != nil {
		t.Fatalf("opening authority: %v", err)
	}
	certsDir := t.TempDir()
	vol, err := certs.OpenVolume(certsDir)
	if err != nil {
		t.Fatalf("opening volume: %v", err)
	}
	t.Cleanup(func() { vol.Close() })
	f := &fixture{
		docker:  &fakeContainers{byID: map[string]dockerwatch.Container{}},
		records: &fakeRecords{recs: map[string]state.Record{}, owners: map[string]state.IdentityOwner{}},
		metrics: &countingMetrics{issued: map[string]int{}},
		certs:   certsDir,
		now:     now,
	}
	for _, c := range cs {
		f.docker.byID[c.ID] = c
	}
	f.r = &ContainerReconciler{
		Containers: f.docker, Volume: vol, Authority: auth, Records: f.records, Identities: f.records,
		Scope: Scope{Project: "crank"}, TrustDomain: "crank.local",
		Issue:   certs.IssueOptions{Lifetime: 90 * 24 * time.Hour},
		Metrics: f.metrics,
		Clock:   func() time.Time { return f.now },
		Jitter:  func(time.Duration) time.Duration { return 0 },
	}
	return f
}

func (f *fixture) reconcile(t *testing.T, id string) (Result, error) {
	t.Helper()
	return f.r.Reconcile(t.Context(), id)
}

func TestReconcileIssuesOnCreate(t *testing.T) {
	t.Parallel()
	c := newContainer(withAliases("crank_default", "email-parser"))
	f := newFixture(t, c)
	res, err := f.reconcile(t, c.ID)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	for _, name := range []string{"tls.crt", "tls.key", "client.crt", "client.key", "ca.crt"} {
		if _, err := os.Stat(filepath.Join(f.certs, "email-parser", name)); err != nil {
			t.Errorf("got %v for %s, want the file in the volume", err, name)
		}
	}
	rec, ok, _ := f.records.Get(c.ID)
	if !ok || rec.Bundle.ServerSerial == "" || rec.Bundle.IssuedReason != "missing" || rec.Service != "email-parser" {
		t.Errorf("got record %+v, want serials and issued reason missing", rec)
	}
	if rec.NeedsRestart {
		t.Errorf("got NeedsRestart for a created container, want false: it finds its certs at first boot")
	}
	// Issued now for 90 days: renewal at 2/3 of that (the 5-minute
	// backdate is not lifetime), no jitter.
	want := 60 * 24 * time.Hour
	if d := res.RequeueAfter - want; d < -time.Minute || d > time.Minute {
		t.Errorf("got RequeueAfter %s, want about %s (renewal at 2/3 of the lifetime)", res.RequeueAfter, want)
	}
	if f.metrics.issued["missing"] != 1 {
		t.Errorf("got issued metrics %v, want missing=1", f.metrics.issued)
	}
}

func TestReconcileIsIdempotent(t *testing.T) {
	t.Parallel()
	c := newContainer()
	f := newFixture(t, c)
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	first, _, _ := f.records.Get(c.ID)
	f.now = f.now.Add(24 * time.Hour)
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	second, _, _ := f.records.Get(c.ID)
	if second.Bundle.ServerSerial != first.Bundle.ServerSerial || second.Bundle.Generation != first.Bundle.Generation {
		t.Errorf("got serial %s gen %s, want unchanged %s gen %s", second.Bundle.ServerSerial, second.Bundle.Generation,
			first.Bundle.ServerSerial, first.Bundle.Generation)
	}
}

func TestReconcileDecisions(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// prepare mutates the fixture after a first successful reconcile.
		prepare func(t *testing.T, f *fixture, id string)
		// wantReason is the recorded issue reason after the second reconcile
		// ("" = the first issuance is kept).
		wantReason string
	}{
		"should reissue a corrupt certificate": {
			prepare: func(t *testing.T, f *fixture, _ string) {
				writeThrough(t, filepath.Join(f.certs, "email-parser", "tls.crt"), "garbage")
			},
			wantReason: "corrupt",
		},
		"should renew when 2/3 of the lifetime has passed": {
			prepare:    func(t *testing.T, f *fixture, _ string) { f.now = f.now.Add(61 * 24 * time.Hour) },
			wantReason: "renew-due",
		},
		"should reissue when the container gains a network alias": {
			prepare: func(t *testing.T, f *fixture, id string) {
				c := f.docker.byID[id]
				c.Networks = map[string]dockerwatch.Network{"crank_default": {Aliases: []string{"parser-v2"}}}
				f.docker.byID[id] = c
			},
			wantReason: "san-mismatch",
		},
		"should keep a valid bundle a day later": {
			prepare: func(t *testing.T, f *fixture, _ string) { f.now = f.now.Add(24 * time.Hour) },
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newContainer()
			f := newFixture(t, c)
			if _, err := f.reconcile(t, c.ID); err != nil {
				t.Fatal(err)
			}
			first, _, _ := f.records.Get(c.ID)
			tc.prepare(t, f, c.ID)
			if _, err := f.reconcile(t, c.ID); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			got, _, _ := f.records.Get(c.ID)
			reissued := got.Bundle.ServerSerial != first.Bundle.ServerSerial
			if tc.wantReason == "" && reissued {
				t.Errorf("got a reissue (reason %s), want the bundle kept", got.Bundle.IssuedReason)
			}
			if tc.wantReason != "" && (!reissued || got.Bundle.IssuedReason != tc.wantReason) {
				t.Errorf("got reissued=%v reason %q, want a reissue for %q", reissued, got.Bundle.IssuedReason, tc.wantReason)
			}
		})
	}
}

// writeThrough replaces the target of a visible bundle symlink in place, as a
// careless operator or a bad tool would.
func writeThrough(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatalf("corrupting %s: %v", path, err)
	}
}

func TestReconcileRecordsStaleProcess(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := newContainer(withRunningSince(f.now.Add(-time.Hour)))
	f.docker.byID[c.ID] = c
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	rec, _, _ := f.records.Get(c.ID)
	if !rec.NeedsRestart || !strings.Contains(rec.NeedsRestartReason, "after the process started") {
		t.Errorf("got NeedsRestart=%v (%q), want true: the process started before its bundle existed", rec.NeedsRestart, rec.NeedsRestartReason)
	}
}

// A gone container's record and series go; its service's series go with
// its last container, and its bundle stays for the next one.
func TestReconcileForgetsGoneContainersAndKeepsBundles(t *testing.T) {
	t.Parallel()
	c1 := newContainer()
	c2 := newContainer(func(c *dockerwatch.Container) { c.ID, c.Name = "fedcba9876543210", "crank-email-parser-2" })
	f := newFixture(t, c1, c2)
	for _, c := range []dockerwatch.Container{c1, c2} {
		if _, err := f.reconcile(t, c.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []dockerwatch.Container{c1, c2} {
		delete(f.docker.byID, c.ID)
		if _, err := f.reconcile(t, c.ID); err != nil {
			t.Fatalf("got error %v, want none for a gone container", err)
		}
		if _, ok, _ := f.records.Get(c.ID); ok {
			t.Errorf("got a record for destroyed %s, want it removed", c.Name)
		}
	}
	want := []string{"crank-email-parser-1", "crank-email-parser-2", "service:email-parser"}
	if !slices.Equal(f.metrics.forgotten, want) {
		t.Errorf("got series forgotten %q, want %q", f.metrics.forgotten, want)
	}
	if _, err := os.Stat(filepath.Join(f.certs, "email-parser", "tls.key")); err != nil {
		t.Errorf("got %v, want the bundle kept for the next container of the service", err)
	}
}

func TestReconcileLeavesUnmanagedContainersAlone(t *testing.T) {
	t.Parallel()
	tests := map[string]dockerwatch.Container{
		"should not touch a container that opts out":           newContainer(withLabel(LabelEnable, "false")),
		"should not touch a container of another project":      newContainer(withProject("other")),
		"should not touch a container with a bad enable label": newContainer(withLabel(LabelEnable, "maybe")),
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, c)
			if _, err := f.reconcile(t, c.ID); err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if entries, _ := os.ReadDir(f.certs); len(entries) != 0 {
				t.Errorf("got %d entries in the certs root, want none", len(entries))
			}
			if len(f.records.recs) != 0 {
				t.Errorf("got records %v, want none", f.records.recs)
			}
		})
	}
}

func TestReconcileErrors(t *testing.T) {
	t.Parallel()
	t.Run("should fail terminally for a service name that cannot be a path", func(t *testing.T) {
		t.Parallel()
		c := newContainer(withService("email_parser"))
		f := newFixture(t, c)
		_, err := f.reconcile(t, c.ID)
		if !IsTerminal(err) || !errors.Is(err, certs.ErrInvalidServiceName) {
			t.Errorf("got %v, want a terminal error wrapping ErrInvalidServiceName", err)
		}
	})
	t.Run("should return a retryable error when Docker fails", func(t *testing.T) {
		t.Parallel()
		boom := errors.New("daemon unavailable")
		f := newFixture(t)
		f.docker.err = boom
		_, err := f.reconcile(t, "abc")
		if err == nil || IsTerminal(err) || !errors.Is(err, boom) {
			t.Errorf("got %v, want a retryable error wrapping %v", err, boom)
		}
	})
}

func TestReconcileReplicasShareOneBundle(t *testing.T) {
	t.Parallel()
	a := newContainer()
	b := newContainer()
	b.ID, b.Name = "fedcba9876543210", "crank-email-parser-2"
	f := newFixture(t, a, b)
	for _, id := range []string{a.ID, b.ID, a.ID, b.ID} {
		if _, err := f.reconcile(t, id); err != nil {
			t.Fatal(err)
		}
	}
	total := 0
	for _, n := range f.metrics.issued {
		total += n
	}
	// The first replica issues; the second reissues to add its name; then
	// both are covered and nothing flaps.
	if total != 2 {
		t.Errorf("got %d issuances (%v), want 2: replicas must not reissue each other's bundle in turn", total, f.metrics.issued)
	}
}

func TestReconcileWarnsOnlyWhenRenewalIsOverdue(t *testing.T) {
	t.Parallel()
	c := newContainer()
	f := newFixture(t, c)
	var logs strings.Builder
	f.r.Log = slog.New(slog.NewTextHandler(&logs, nil))
	f.r.ExpiryWarn = []time.Duration{720 * time.Hour, 24 * time.Hour}
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	// 30 days left at the renewal point: a normal renewal, no warning.
	f.now = f.now.Add(60 * 24 * time.Hour)
	if _, err := f.reconcile(t, c.ID); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "have not been renewed") {
		t.Fatalf("got an expiry warning at a normal renewal, want none:\n%s", logs.String())
	}
	// A renewal that is overdue (the record says it should have happened
	// and the leaf is inside the thresholds) is reported, once each.
	rec, _, _ := f.records.Get(c.ID)
	rec.Bundle.RenewAt = f.now.Add(-time.Hour)
	rec.Bundle.NotAfter = f.now.Add(20 * time.Hour)
	f.r.warnExpiry("email-parser", &rec, f.now, f.r.Log)
	f.r.warnExpiry("email-parser", &rec, f.now, f.r.Log)
	if got := strings.Count(logs.String(), "have not been renewed"); got != 2 {
		t.Errorf("got %d warnings, want 2 (one per threshold crossed, each once):\n%s", got, logs.String())
	}
}
