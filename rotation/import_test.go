package rotation

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// corpCA is an operator's issuing intermediate under its root, valid for
// years around t0, as `controller ca import` checks it at now.
func corpCA(t *testing.T, name string, now time.Time) (*certs.CA, *testpki.CA) {
	t.Helper()
	valid := testpki.WithValidity(t0.Add(-24*time.Hour), t0.Add(3*365*24*time.Hour))
	root := testpki.NewCA(t, testpki.WithCommonName(name+" root"), testpki.WithMaxPathLen(1), valid)
	inter := root.NewIntermediate(t, testpki.WithCommonName(name+" issuing CA"), valid)
	ca, err := certs.CheckImport(certs.ImportInput{CertPEM: inter.CertPEM, KeyPEM: inter.KeyPEM, ChainPEM: root.CertPEM}, certs.ImportOptions{Now: now})
	if err != nil {
		t.Fatalf("importing %s: %v", name, err)
	}
	return ca, root
}

// stagedFiles lists the staged import files left in the state dir.
func (s *stack) stagedFiles() []string {
	var out []string
	for _, name := range []string{"ca-import.crt", "ca-import.key"} {
		if _, err := os.Stat(filepath.Join(s.dir, name)); err == nil {
			out = append(out, name)
		}
	}
	return out
}

func (s *stack) requestPending() bool {
	_, err := os.Stat(filepath.Join(s.dir, RequestFile))
	return !errors.Is(err, fs.ErrNotExist)
}

func (s *stack) trustedSubjects() []string {
	certsIn, err := certs.ParseCertificatesPEM(s.a.TrustBundle())
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, c := range certsIn {
		out = append(out, c.Subject.CommonName)
	}
	return out
}

func TestRotatorRollsOverFromItsOwnCAToAnImportedIntermediate(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	own := s.a.Active().Cert.Subject.CommonName
	imported, root := corpCA(t, "corp", s.now)
	if err := RequestImport(s.dir, imported, s.now); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Second)
	s.step()
	m := s.meta()
	if m.Phase != PhaseOverlap || m.Trigger != TriggerImport || s.a.Successor() == nil || !s.a.Successor().Cert.Equal(imported.Cert) {
		t.Fatalf("got phase %s trigger %q, want overlap by import with the intermediate as successor:\n%s", m.Phase, m.Trigger, s.logs.dump())
	}
	if s.requestPending() || len(s.stagedFiles()) > 0 {
		t.Errorf("got request pending %v and staged files %v, want both consumed", s.requestPending(), s.stagedFiles())
	}
	if got, want := s.trustedSubjects(), []string{own, "corp root"}; !slices.Equal(got, want) {
		t.Errorf("got trust bundle %q during the overlap, want %q", got, want)
	}
	if got := s.prober.issuer(t); got != "corp issuing CA" {
		t.Errorf("got the prober's certificate from %q, want the imported intermediate", got)
	}
	if n := len(s.prober.cert.Certificate); n != 2 {
		t.Errorf("got a prober certificate of %d certificates, want the leaf and the intermediate", n)
	}
	if st := s.rot.Status(); st.Import == nil || st.Import.State != ImportAdopted || st.Successor == nil || !st.Successor.Imported || st.Successor.Issuer != "CN=corp root" {
		t.Errorf("got status import %+v successor %+v, want adopted, imported, issued by the root", st.Import, st.Successor)
	}

	s.everyoneReloads(false)
	s.step()
	if got := s.meta().Phase; got != PhaseReissue || !s.a.Active().Imported {
		t.Fatalf("got phase %s, active imported %v, want reissue with the intermediate active:\n%s", got, s.a.Active().Imported, s.logs.dump())
	}
	s.everyoneReloads(true)
	s.step()
	if got := s.meta().Phase; got != PhaseIdle || len(s.a.Retiring()) != 0 {
		t.Fatalf("got phase %s with %d retiring, want idle with none:\n%s", got, len(s.a.Retiring()), s.logs.dump())
	}
	if got := s.trustedSubjects(); !slices.Equal(got, []string{"corp root"}) {
		t.Errorf("got trust bundle %q after the retire, want the root alone", got)
	}
	s.writeCA("web") // the reconciler's trust-bundle-stale rewrite
	if b, _ := s.volume.ReadBundle("web"); b == nil || string(b.CA) != string(root.CertPEM) {
		t.Errorf("got web's ca.crt %q, want the operator's root", b.CA)
	}
	if n := s.logs.count(slog.LevelError, ""); n != 0 {
		t.Errorf("got %d ERROR lines in a rollover that went well, want 0:\n%s", n, s.logs.dump())
	}

	// Imported: never rolled over by itself, only warned about.
	s.now = s.a.Active().NotAfter().Add(-20 * 24 * time.Hour) // far past the rollover fraction, inside the 720h warning
	s.step()
	if got := s.meta().Phase; got != PhaseIdle || s.a.Successor() != nil {
		t.Errorf("got phase %s past the rollover fraction of an imported CA, want idle and no CA of our own", got)
	}
	if n := s.logs.count(slog.LevelWarn, "import its successor"); n != 1 {
		t.Errorf("got %d expiry warnings saying to import a successor, want 1:\n%s", n, s.logs.dump())
	}
	if st := s.rot.Status(); !st.RotateAt.IsZero() || !st.ActiveCA.Imported {
		t.Errorf("got status rotate_at %v imported %v, want no automatic rollover and imported", st.RotateAt, st.ActiveCA.Imported)
	}
}

func TestRotatorRollsOverBetweenImportedIntermediatesOfOneRoot(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	first, root := corpCA(t, "corp", s.now)
	if err := RequestImport(s.dir, first, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	s.everyoneReloads(false)
	s.step()
	s.everyoneReloads(true)
	s.step()
	if got := s.meta().Phase; got != PhaseIdle {
		t.Fatalf("got phase %s, want the first import done:\n%s", got, s.logs.dump())
	}
	sibling := root.NewIntermediate(t, testpki.WithCommonName("corp issuing CA 2"), testpki.WithValidity(t0.Add(-24*time.Hour), t0.Add(3*365*24*time.Hour)))
	second, err := certs.CheckImport(certs.ImportInput{CertPEM: sibling.ChainPEM(), KeyPEM: sibling.KeyPEM}, certs.ImportOptions{Now: s.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := RequestImport(s.dir, second, s.now); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Second)
	s.step()
	if m := s.meta(); m.Phase != PhaseOverlap || m.Trigger != TriggerImport {
		t.Fatalf("got phase %s trigger %q, want overlap by import", m.Phase, m.Trigger)
	}
	// The root does not change, so every bundle already trusts the new CA:
	// the overlap ends on the next probes without a single restart.
	s.advance(time.Second)
	for id := range s.store.recs {
		s.probe(id, "mtls")
	}
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Fatalf("got phase %s, want reissue without a restart (the root is unchanged):\n%s", got, s.logs.dump())
	}
	// The old intermediate's leaves still verify to the root, but the
	// reissue phase still waits for every service to serve the new one.
	s.advance(time.Second)
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Fatalf("got phase %s before any reissue, want reissue waiting", got)
	}
	s.everyoneReloads(true)
	s.step()
	if got := s.meta().Phase; got != PhaseIdle || !s.a.Active().Cert.Equal(second.Cert) {
		t.Errorf("got phase %s, want idle with the second intermediate active", got)
	}
}

// In swarm mode the Authority works on a copy of the CA outside the state
// dir, where the CLI stages an import next to its request.
func TestRotatorAdoptsAnImportStagedOutsideTheAuthoritysDir(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	stateDir := t.TempDir()
	s.rot.StateDir = stateDir
	imported, _ := corpCA(t, "corp", s.now)
	if err := RequestImport(stateDir, imported, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	if m := s.meta(); m.Phase != PhaseOverlap || !s.a.Successor().Cert.Equal(imported.Cert) {
		t.Fatalf("got phase %s, want the import adopted as the successor:\n%s", m.Phase, s.logs.dump())
	}
	entries, err := os.ReadDir(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != StatusFile {
			t.Errorf("got %s left in the state dir, want only the status file", e.Name())
		}
	}
}

func TestRotatorKeepsAnImportWaitingWhileARolloverRuns(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	if err := WriteRequest(s.dir, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	own := s.a.Successor()
	imported, _ := corpCA(t, "corp", s.now)
	if err := RequestImport(s.dir, imported, s.now); err != nil {
		t.Fatal(err)
	}
	s.advance(time.Second)
	s.step()
	if !s.requestPending() || len(s.stagedFiles()) != 2 || !s.a.Successor().Cert.Equal(own.Cert) {
		t.Fatalf("got request pending %v, staged %v, want the import left waiting beside the running rollover", s.requestPending(), s.stagedFiles())
	}
	if st := s.rot.Status(); st.Import == nil || st.Import.State != ImportPending || !st.RequestPending {
		t.Errorf("got status import %+v pending %v, want pending", st.Import, st.RequestPending)
	}
	s.everyoneReloads(false)
	s.step()
	s.everyoneReloads(true)
	s.step()
	if got := s.meta().Phase; got != PhaseIdle {
		t.Fatalf("got phase %s, want the first rollover done:\n%s", got, s.logs.dump())
	}
	s.advance(time.Second)
	s.step()
	if m := s.meta(); m.Phase != PhaseOverlap || m.Trigger != TriggerImport || !s.a.Successor().Cert.Equal(imported.Cert) {
		t.Errorf("got phase %s trigger %q, want the waiting import adopted once idle", m.Phase, m.Trigger)
	}
}

func TestRotatorRefusesAnImportThatNoLongerPassesItsChecks(t *testing.T) {
	t.Parallel()
	s := newStack(t, withCALifetime(5*365*24*time.Hour))
	imported, _ := corpCA(t, "corp", s.now)
	if err := RequestImport(s.dir, imported, s.now); err != nil {
		t.Fatal(err)
	}
	// The controller looks only when the intermediate has less than one
	// leaf lifetime left.
	s.now = imported.NotAfter().Add(-24 * time.Hour)
	active := s.a.Active().Cert
	s.step()
	if m := s.meta(); m.Phase != PhaseIdle || s.a.Successor() != nil || !s.a.Active().Cert.Equal(active) {
		t.Fatalf("got phase %s successor %v, want nothing changed", m.Phase, s.a.Successor() != nil)
	}
	if s.requestPending() || len(s.stagedFiles()) > 0 {
		t.Errorf("got request pending %v and staged files %v, want the refused import removed", s.requestPending(), s.stagedFiles())
	}
	if n := s.logs.count(slog.LevelError, "CA import refused (expires-within-leaf-lifetime)"); n != 1 {
		t.Errorf("got %d ERROR lines naming the failed check, want 1:\n%s", n, s.logs.dump())
	}
	st, err := ReadStatus(s.dir)
	if err != nil || st.Import == nil || st.Import.State != ImportRefused || st.Import.Reason != string(certs.ImportExpiresSoon) {
		t.Errorf("got status file import %+v (%v), want refused with expires-within-leaf-lifetime", st.Import, err)
	}
}

func TestRotatorConsumesAnImportInstalledAtFirstStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	imported, _ := corpCA(t, "corp", t0)
	if err := RequestImport(dir, imported, t0); err != nil {
		t.Fatal(err)
	}
	a, created, err := certs.OpenAuthority(dir, certs.AuthorityOptions{}, t0)
	if err != nil || !created || !a.Active().Cert.Equal(imported.Cert) {
		t.Fatalf("got created=%v err=%v, want the staged intermediate installed", created, err)
	}
	logs := &logRecorder{}
	rot := &Rotator{Authority: a, Store: newFakeStore(), Volume: &fakeVolume{}, Containers: &fakeDocker{}, Prober: &fakeProber{},
		StateDir: dir, Log: slog.New(logs), Clock: func() time.Time { return t0 }}
	if err := rot.Step(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, RequestFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got request file stat %v, want the request consumed", err)
	}
	st := rot.Status()
	if st.Phase != PhaseIdle || st.Import == nil || st.Import.State != ImportAdopted || !strings.Contains(st.ActiveCA.Subject, "corp issuing CA") {
		t.Errorf("got status %+v, want idle with the import in use", st)
	}
}
