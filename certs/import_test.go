package certs

import (
	"bytes"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAuthorityImportStepsLeaveALoadableState is
// TestAuthorityEveryStepLeavesALoadableState for imported CAs: a first
// install from a staged import, then a rollover to another staged import.
// A crash after any durable step must leave a directory that loads, whose
// active CA is the one before or after, and trusts both roots in between.
func TestAuthorityImportStepsLeaveALoadableState(t *testing.T) {
	t.Parallel()
	first, second := newCorpPKI(t, "first"), newCorpPKI(t, "second")
	dir := t.TempDir()
	if err := StageImport(dir, first.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	var snaps, steps []string
	hook := func(step string) {
		steps = append(steps, step)
		snaps = append(snaps, copyStateDir(t, dir))
	}
	a, created, err := openAuthority(dir, AuthorityOptions{}, t0, hook)
	if err != nil || !created {
		t.Fatalf("got created=%v err=%v, want the staged import installed", created, err)
	}
	installed := len(snaps)
	if err := StageImport(dir, second.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	_, next, err := ReadStagedImport(dir, ImportOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AdoptSuccessor(next); err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	if err := a.Retire(); err != nil {
		t.Fatal(err)
	}
	wantSteps := []string{
		"write ca.creating", "write ca.key", "write ca.crt", "remove ca-import.key", "remove ca-import.crt", "remove ca.creating",
		"write ca-next.key", "write ca-next.crt", "remove ca-import.key", "remove ca-import.crt",
		"write ca-retiring.crt", "write ca.crt", "write ca.key", "remove ca-next.crt", "remove ca-next.key",
		"remove ca-retiring.crt",
	}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("got steps %q, want %q", steps, wantSteps)
	}
	roots := []*x509.Certificate{first.root.Cert, second.root.Cert}
	for i, snap := range snaps {
		got, _, err := OpenAuthority(snap, AuthorityOptions{}, t0)
		if err != nil {
			t.Errorf("after step %d (%s): got %v, want a loadable directory", i, steps[i], err)
			continue
		}
		act := got.Active()
		if !act.Imported || (!act.Cert.Equal(first.inter.Cert) && !act.Cert.Equal(second.inter.Cert)) {
			t.Errorf("after step %d (%s): got active %q (imported %v), want one of the imported intermediates", i, steps[i], act.Cert.Subject.CommonName, act.Imported)
		}
		trusted, _ := ParseCertificatesPEM(got.TrustBundle())
		inRollover := i >= installed+2 && i < len(snaps)-1 // from ca-next.crt until the retire
		for _, r := range roots {
			if inRollover && !slices.ContainsFunc(trusted, r.Equal) {
				t.Errorf("after step %d (%s): trust bundle %s lacks %q", i, steps[i], certCommonNames(trusted), r.Subject.CommonName)
			}
		}
	}
	if got := sortedKeys(stateDirContents(t, dir)); !slices.Equal(got, []string{"ca.crt", "ca.key"}) {
		t.Errorf("got files %v at the end, want no staged import and no rollover files", got)
	}
}

func TestOpenAuthorityStartsWithAStagedImport(t *testing.T) {
	t.Parallel()
	corp := newCorpPKI(t, "corp")
	dir := t.TempDir()
	if err := StageImport(dir, corp.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-import.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("got staged key %v (%v), want mode 0600", fi, err)
	}
	a, created, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil || !created {
		t.Fatalf("got created=%v err=%v, want the import installed", created, err)
	}
	if got := sortedKeys(stateDirContents(t, dir)); !slices.Equal(got, []string{"ca.crt", "ca.key"}) {
		t.Errorf("got files %v, want the staged files consumed", got)
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("got ca.key %v (%v), want mode 0600", fi, err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if !bytes.HasPrefix(raw, []byte(importedMarker)) {
		t.Errorf("got ca.crt starting %q, want the imported marker", raw[:min(len(raw), 40)])
	}
	again, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]*Authority{"first open": a, "reopened": again} {
		act := got.Active()
		if !act.Imported || !act.Cert.Equal(corp.inter.Cert) || !act.Anchor().Equal(corp.root.Cert) {
			t.Errorf("%s: got active %q imported=%v anchor %q, want the intermediate, imported, under the root", name,
				act.Cert.Subject.CommonName, act.Imported, act.Anchor().Subject.CommonName)
		}
		if want := encodeCertsPEM([]*x509.Certificate{corp.root.Cert}); !bytes.Equal(got.TrustBundle(), want) {
			t.Errorf("%s: got trust bundle %s, want the root alone", name, got.TrustBundle())
		}
	}
	id := Identity{Service: "web", DNSNames: []string{"web"}}
	b, _, err := a.IssueBundle(id, IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []struct {
		name string
		pem  []byte
	}{{FileServerCert, b.ServerCert}, {FileClientCert, b.ClientCert}} {
		certs, _ := ParseCertificatesPEM(file.pem)
		if len(certs) != 2 || !certs[1].Equal(corp.inter.Cert) {
			t.Errorf("got %s of %d certificates, want the leaf and the intermediate", file.name, len(certs))
		}
	}
	if fs := Validate(b, Expectation{Identity: id, Authority: again, Now: t0}); len(fs) != 0 {
		t.Errorf("got findings %v for a fresh bundle of an imported intermediate, want none", fs)
	}
}

func TestOpenAuthorityCreatesItsOwnCABesideAnImportItCannotUse(t *testing.T) {
	t.Parallel()
	corp := newCorpPKI(t, "corp")
	dir := t.TempDir()
	if err := StageImport(dir, corp.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	later := corp.inter.Cert.NotAfter.Add(time.Hour) // the staged CA expired before the first start
	a, created, err := OpenAuthority(dir, AuthorityOptions{}, later)
	if err != nil || !created {
		t.Fatalf("got created=%v err=%v, want a CA of its own", created, err)
	}
	if a.Active().Imported || a.Active().Cert.Equal(corp.inter.Cert) {
		t.Errorf("got the expired import active, want a new CA")
	}
	if got := sortedKeys(stateDirContents(t, dir)); !slices.Equal(got, []string{"ca-import.crt", "ca-import.key", "ca.crt", "ca.key"}) {
		t.Errorf("got files %v, want the staged import left for the rotator to report", got)
	}
}

func TestAuthorityRollsOverFromItsOwnCAToAnImportedIntermediate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	own := a.Active()
	corp := newCorpPKI(t, "corp")
	id := Identity{Service: "web", DNSNames: []string{"web"}}
	oldBundle, _, err := a.IssueBundle(id, IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := StageImport(dir, corp.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	fp, imp, err := ReadStagedImport(dir, ImportOptions{Now: t0})
	if err != nil || fp != certFingerprint(corp.inter.Cert) {
		t.Fatalf("got staged import %q (%v), want the intermediate's fingerprint", fp, err)
	}
	if err := a.AdoptSuccessor(imp); err != nil {
		t.Fatal(err)
	}
	if err := a.AdoptSuccessor(imp); err != nil {
		t.Errorf("got %v adopting the same CA again, want a no-op", err)
	}
	if got := sortedKeys(stateDirContents(t, dir)); slices.Contains(got, "ca-import.key") || slices.Contains(got, "ca-import.crt") {
		t.Errorf("got files %v after adopting, want the staged files gone", got)
	}
	wantBundle(t, "overlap", a, own.Cert, corp.root.Cert)
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, "promoted", a, corp.root.Cert, own.Cert)
	newBundle, _, err := a.IssueBundle(id, IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	exp := Expectation{Identity: id, Authority: a, Now: t0}
	if fs := Validate(newBundle, exp); len(fs) != 0 {
		t.Errorf("got findings %v for a bundle of the imported CA, want none", fs)
	}
	if got := Reasons(Validate(oldBundle, exp)); !slices.Equal(got, []Reason{ReasonWrongIssuer, ReasonTrustBundleStale}) {
		t.Errorf("got reasons %v for an old bundle after the promote, want [wrong-issuer trust-bundle-stale]", got)
	}
	reopened, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil || !reopened.Active().Imported || len(reopened.Retiring()) != 1 {
		t.Fatalf("reopening after the promote: got err %v, want the imported CA active and our own retiring", err)
	}
	if err := a.Retire(); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, "retired", a, corp.root.Cert)
	if got := Reasons(Validate(oldBundle, exp)); !slices.Contains(got, ReasonWrongCA) {
		t.Errorf("got reasons %v for an old bundle after the retire, want wrong-ca", got)
	}
}

func TestAuthorityRollsOverBetweenIntermediatesOfOneRoot(t *testing.T) {
	t.Parallel()
	corp := newCorpPKI(t, "corp")
	second := corp.root.NewIntermediate(t, validAroundT0())
	dir := t.TempDir()
	if err := StageImport(dir, corp.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	a, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	next, err := CheckImport(ImportInput{CertPEM: second.ChainPEM(), KeyPEM: second.KeyPEM}, ImportOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.AdoptSuccessor(next); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, "overlap", a, corp.root.Cert)
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, "promoted", a, corp.root.Cert)
	reopened, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	// The rotation's reissue phase exists because there is a retiring CA,
	// even though the roots peers trust do not change.
	if ret := reopened.Retiring(); len(ret) != 1 || !ret[0].Equal(corp.inter.Cert) {
		t.Errorf("got retiring %s, want the first intermediate", certCommonNames(ret))
	}
}

func TestAuthorityRefusesToAdoptOverAnotherSuccessor(t *testing.T) {
	t.Parallel()
	a, _, err := OpenAuthority(t.TempDir(), AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateSuccessor(t0); err != nil {
		t.Fatal(err)
	}
	if err := a.AdoptSuccessor(newCorpPKI(t, "late").importedCA(t)); !errors.Is(err, ErrSuccessorExists) {
		t.Errorf("got %v, want ErrSuccessorExists", err)
	}
}

func TestDropStagedImportKeepsANewerImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := OpenAuthority(dir, AuthorityOptions{}, t0); err != nil {
		t.Fatal(err)
	}
	refused, newer := newCorpPKI(t, "refused"), newCorpPKI(t, "newer")
	if err := StageImport(dir, newer.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	if err := DropStagedImport(dir, certFingerprint(refused.inter.Cert)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-import.key")); err != nil {
		t.Errorf("got %v, want the newer staged import kept", err)
	}
	if err := DropStagedImport(dir, certFingerprint(newer.inter.Cert)); err != nil {
		t.Fatal(err)
	}
	if got := sortedKeys(stateDirContents(t, dir)); !slices.Equal(got, []string{"ca.crt", "ca.key"}) {
		t.Errorf("got files %v, want the staged import dropped", got)
	}
}

func TestReadStagedImportChecksAgain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, _, err := ReadStagedImport(dir, ImportOptions{Now: t0}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v without a staged import, want fs.ErrNotExist", err)
	}
	corp := newCorpPKI(t, "corp")
	if err := StageImport(dir, corp.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	late := corp.inter.Cert.NotAfter.Add(-time.Hour)
	fp, _, err := ReadStagedImport(dir, ImportOptions{Now: late})
	if ImportReasonOf(err) != ImportExpiresSoon || fp != certFingerprint(corp.inter.Cert) {
		t.Errorf("got %q, %v, want the fingerprint and expires-within-leaf-lifetime", fp, err)
	}
}

func TestReadTrustBundle(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := ReadTrustBundle(dir, t0); !errors.Is(err, ErrNoCA) {
		t.Errorf("got %v for an empty state dir, want ErrNoCA", err)
	}
	corp := newCorpPKI(t, "corp")
	if err := StageImport(dir, corp.importedCA(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadTrustBundle(dir, t0); !errors.Is(err, ErrNoCA) || !strings.Contains(err.Error(), "when it starts") {
		t.Errorf("got %v for a staged import only, want ErrNoCA saying when the CA comes", err)
	}
	a, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateSuccessor(t0); err != nil {
		t.Fatal(err)
	}
	before := stateDirContents(t, dir)
	got, err := ReadTrustBundle(dir, t0)
	if err != nil || !bytes.Equal(got, a.TrustBundle()) {
		t.Errorf("got %s (%v), want the authority's trust bundle %s", got, err, a.TrustBundle())
	}
	if strings.Contains(string(got), "PRIVATE KEY") {
		t.Error("got a key in the trust bundle")
	}
	if after := stateDirContents(t, dir); !equalContents(before, after) {
		t.Errorf("got files %v after reading, want them untouched", sortedKeys(after))
	}
}
