package rotation

import (
	"context"
	"crypto/x509"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

func TestRotatorWalksAManualRolloverToTheEnd(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	oldCN := s.a.Active().Cert.Subject.CommonName
	s.step()
	if got := s.meta().Phase; got != PhaseIdle {
		t.Fatalf("got phase %s before any request, want idle", got)
	}
	if err := WriteRequest(s.dir, s.now); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Second)
	s.step()
	m := s.meta()
	if m.Phase != PhaseOverlap || m.Trigger != TriggerManual || s.a.Successor() == nil {
		t.Fatalf("got phase %s trigger %q successor %v, want overlap, manual, a successor", m.Phase, m.Trigger, s.a.Successor() != nil)
	}
	if _, err := os.Stat(filepath.Join(s.dir, RequestFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got request file stat error %v, want it consumed", err)
	}
	if got, want := s.prober.issuer(t), s.a.Successor().Cert.Subject.CommonName; got != want {
		t.Errorf("got the prober's certificate from %q, want the successor %q", got, want)
	}

	// Nobody reloaded yet: the overlap waits and says for whom.
	s.advance(time.Second)
	s.step()
	if st := s.rot.Status(); st.Phase != PhaseOverlap || st.Done != 0 || st.Total != 2 || len(st.WaitingFor) != 2 {
		t.Fatalf("got status %+v, want overlap 0/2 waiting for both", st)
	}
	if n := s.logs.count(slog.LevelInfo, "CA rollover: overlap 0/2 services trust the new CA; waiting for api"); n != 1 {
		t.Errorf("got %d progress lines, want 1:\n%s", n, s.logs.dump())
	}
	fromFile, err := ReadStatus(s.dir)
	if err != nil || fromFile.Phase != PhaseOverlap || fromFile.Total != 2 {
		t.Errorf("got status file %+v (%v), want overlap with 2 services", fromFile, err)
	}

	s.everyoneReloads(false)
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Fatalf("got phase %s after every service reloaded, want reissue:\n%s", got, s.logs.dump())
	}
	if s.a.Active().Cert.Subject.CommonName == oldCN || len(s.a.Retiring()) != 1 {
		t.Fatalf("got active %q and %d retiring, want the successor active and the old CA retiring", s.a.Active().Cert.Subject.CommonName, len(s.a.Retiring()))
	}
	if got := s.prober.issuer(t); got != s.a.Active().Cert.Subject.CommonName {
		t.Errorf("got the prober's certificate from %q, want the new active CA", got)
	}

	// Bundles reissued but processes not restarted: still serving old leaves.
	for id, r := range s.store.recs {
		old, _ := s.volume.ReadBundle(r.Service)
		leaves, _ := certs.ParseCertificatesPEM(old.ServerCert)
		s.reissue(r.Service)
		s.serves(id, fingerprint(leaves[0]))
	}
	s.advance(time.Second)
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Fatalf("got phase %s while old leaves are served, want reissue", got)
	}
	s.everyoneReloads(false)
	s.step()
	if got := s.meta().Phase; got != PhaseIdle || len(s.a.Retiring()) != 0 {
		t.Fatalf("got phase %s with %d retiring CAs, want idle with none:\n%s", got, len(s.a.Retiring()), s.logs.dump())
	}
	if n := s.logs.count(slog.LevelError, ""); n != 0 {
		t.Errorf("got %d ERROR lines in a rollover that went well, want 0:\n%s", n, s.logs.dump())
	}
}

func TestRotatorStartsAutomaticallyAtTheFraction(t *testing.T) {
	t.Parallel()
	s := newStack(t, withCALifetime(100*time.Hour))
	s.rot.Fraction = 0.8
	nb := s.a.Active().Cert.NotBefore
	s.now = nb.Add(79 * time.Hour)
	s.step()
	if got := s.meta().Phase; got != PhaseIdle {
		t.Fatalf("got phase %s before 0.8 of the lifetime, want idle", got)
	}
	s.now = nb.Add(81 * time.Hour)
	s.step()
	if m := s.meta(); m.Phase != PhaseOverlap || m.Trigger != TriggerAutomatic {
		t.Fatalf("got phase %s trigger %q after 0.8 of the lifetime, want overlap, automatic", m.Phase, m.Trigger)
	}
}

func TestRotatorResumesAfterARestart(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	if err := WriteRequest(s.dir, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	before := s.meta()

	// A new process: the Authority reopened from disk, a fresh Rotator.
	s.advance(time.Hour)
	a, _, err := certs.OpenAuthority(s.dir, certs.AuthorityOptions{}, s.now)
	if err != nil {
		t.Fatal(err)
	}
	s.a = a
	s.rot = s.newRotator()
	s.step()
	after := s.meta()
	if after.Phase != PhaseOverlap || !after.StartedAt.Equal(before.StartedAt) || !after.PhaseSince.Equal(before.PhaseSince) || after.Successor != before.Successor {
		t.Errorf("got meta %+v after a restart, want the same overlap %+v", after, before)
	}
	if got := s.prober.issuer(t); got != a.Successor().Cert.Subject.CommonName {
		t.Errorf("got the prober's certificate from %q after a restart, want the successor", got)
	}
}

func TestRotatorLetsTheFilesWin(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	// A crash after Promote but before the meta was saved: meta says
	// overlap, the files already say reissue.
	next, err := s.a.CreateSuccessor(s.now)
	if err != nil {
		t.Fatal(err)
	}
	stale := Meta{Phase: PhaseOverlap, Trigger: TriggerManual, StartedAt: t0, PhaseSince: t0, Successor: fingerprint(next.Cert)}
	if err := s.store.PutMeta(MetaKey, stale); err != nil {
		t.Fatal(err)
	}
	if err := s.a.Promote(); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Minute)
	s.step()
	if m := s.meta(); m.Phase != PhaseReissue || !m.StartedAt.Equal(t0) {
		t.Errorf("got meta %+v, want reissue keeping the rollover's start", m)
	}
	if n := s.logs.count(slog.LevelWarn, "they win"); n != 1 {
		t.Errorf("got %d reconciliation lines, want 1:\n%s", n, s.logs.dump())
	}
}

func TestRotatorProceedsAfterTheTimeoutWithAnError(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.rot.Timeout = time.Hour
	if err := WriteRequest(s.dir, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	s.writeCA("web")
	s.advance(time.Second)
	s.restart("web-1")
	s.advance(time.Second)
	s.probe("web-1", "mtls")
	s.probe("api-1", "plain", "client-cert-rejected") // never reloads
	s.step()
	if got := s.meta().Phase; got != PhaseOverlap {
		t.Fatalf("got phase %s with api lagging, want overlap", got)
	}
	s.advance(time.Hour)
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Fatalf("got phase %s after the timeout, want reissue", got)
	}
	if n := s.logs.count(slog.LevelError, "waiting for api"); n != 1 {
		t.Errorf("got %d ERROR lines naming api, want 1:\n%s", n, s.logs.dump())
	}
}

func TestRotatorDoesNotWaitForStoppedOrGoneContainers(t *testing.T) {
	t.Parallel()
	s := newStack(t, withServices("web", "api", "batch"))
	if err := WriteRequest(s.dir, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	s.stop("api-1")
	s.docker.mu.Lock()
	delete(s.docker.cts, "batch-1")
	s.docker.mu.Unlock()
	s.writeCA("web")
	s.advance(time.Second)
	s.restart("web-1")
	s.advance(time.Second)
	s.probe("web-1", "mtls")
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Errorf("got phase %s, want reissue: stopped and gone containers are not waited for:\n%s", got, s.logs.dump())
	}
}

func TestRotatorRecoversACAThatExpiresWhileRunning(t *testing.T) {
	t.Parallel()
	s := newStack(t, withCALifetime(10*time.Hour))
	old := s.a.Active().Cert
	s.now = old.NotAfter.Add(time.Minute)
	s.step()
	if s.a.Active().Cert.Equal(old) {
		t.Fatal("got the expired CA still active, want a new one")
	}
	if m := s.meta(); m.Phase != PhaseIdle || m.Trigger != TriggerExpired {
		t.Errorf("got meta %+v, want idle after an expired recovery (the expired CA retired at once)", m)
	}
	if got := s.prober.issuer(t); got != s.a.Active().Cert.Subject.CommonName {
		t.Errorf("got the prober's certificate from %q, want the new CA", got)
	}
}

func TestRecoverExpired(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, _, err := certs.OpenAuthority(dir, certs.AuthorityOptions{Lifetime: 10 * time.Hour}, t0)
	if err != nil {
		t.Fatal(err)
	}
	id := certs.Identity{Service: "web", DNSNames: []string{"web"}}
	oldBundle, _, err := a.IssueBundle(id, certs.IssueOptions{Now: t0, Lifetime: 5 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	later := t0.Add(11 * time.Hour)
	a, _, err = certs.OpenAuthority(dir, certs.AuthorityOptions{Lifetime: 10 * time.Hour}, later)
	if !errors.Is(err, certs.ErrCAExpired) || a == nil {
		t.Fatalf("got %v (authority %v), want ErrCAExpired with the authority", err, a != nil)
	}
	logs := &logRecorder{}
	if err := RecoverExpired(a, later, slog.New(logs)); err != nil {
		t.Fatal(err)
	}
	reopened, _, err := certs.OpenAuthority(dir, certs.AuthorityOptions{}, later)
	if err != nil {
		t.Fatalf("reopening after recovery: got %v, want a loadable authority", err)
	}
	newBundle, _, err := reopened.IssueBundle(id, certs.IssueOptions{Now: later})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(certPEM []byte) error {
		leaves, err := certs.ParseCertificatesPEM(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		_, err = leaves[0].Verify(x509.VerifyOptions{Roots: reopened.TrustPool(), CurrentTime: later, DNSName: "web"})
		return err
	}
	if err := verify(newBundle.ServerCert); err != nil {
		t.Errorf("got %v verifying a new leaf, want it to verify", err)
	}
	if err := verify(oldBundle.ServerCert); err == nil {
		t.Error("got an old leaf verifying after recovery, want it refused")
	}
	if n := len(reopened.Retiring()); n != 0 {
		t.Errorf("got %d retiring CAs, want the expired one retired at once", n)
	}
	if n := logs.count(slog.LevelError, "CA expired"); n != 1 {
		t.Errorf("got %d ERROR lines about the expiry, want 1:\n%s", n, logs.dump())
	}
	if err := RecoverExpired(reopened, later, nil); err != nil {
		t.Errorf("got %v recovering a valid CA, want a no-op", err)
	}
}

func TestRotatorWarnsOncePerThreshold(t *testing.T) {
	t.Parallel()
	s := newStack(t, withCALifetime(2000*time.Hour))
	s.rot.Fraction = 0.99 // keep the automatic rollover out of the way
	notAfter := s.a.Active().Cert.NotAfter
	for _, at := range []time.Duration{800 * time.Hour, 700 * time.Hour, 699 * time.Hour, 100 * time.Hour, 90 * time.Hour, 20 * time.Hour, 19 * time.Hour} {
		s.now = notAfter.Add(-at)
		s.step()
	}
	for _, th := range []string{"720h0m0s warning threshold", "168h0m0s warning threshold", "24h0m0s warning threshold"} {
		if n := s.logs.count(slog.LevelWarn, th); n != 1 {
			t.Errorf("got %d WARN lines for the %s, want 1:\n%s", n, th, s.logs.dump())
		}
	}
}

func TestRotatorWarnsOnlyTheTightestThresholdAtStart(t *testing.T) {
	t.Parallel()
	s := newStack(t, withCALifetime(2000*time.Hour))
	s.rot.Fraction = 0.99
	s.now = s.a.Active().Cert.NotAfter.Add(-100 * time.Hour)
	s.step()
	s.step()
	if n, m := s.logs.count(slog.LevelWarn, "168h0m0s warning"), s.logs.count(slog.LevelWarn, "warning threshold"); n != 1 || m != 1 {
		t.Errorf("got %d lines for 168h and %d in all, want 1 and 1:\n%s", n, m, s.logs.dump())
	}
}

func TestRotatorStartStopsWithTheContext(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	s.rot.Interval = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.rot.Start(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for s.rot.Status().CheckedAt.IsZero() {
		if time.Now().After(deadline) {
			t.Fatal("no step within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("got %v from Start, want nil", err)
	}
	if !strings.Contains(s.rot.Status().ActiveCA.Subject, "crank-mtls-controller CA") {
		t.Errorf("got active CA %q in the status, want ours", s.rot.Status().ActiveCA.Subject)
	}
}
