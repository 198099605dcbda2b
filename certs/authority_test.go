package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
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

// memAuthority builds an Authority in memory, not backed by any directory;
// enough for issuing and validating, not for rollover writes.
func memAuthority(active, successor *CA, retiring ...*x509.Certificate) *Authority {
	opts, _ := AuthorityOptions{}.withDefaults()
	paths := make([]certPath, len(retiring))
	for i, c := range retiring {
		paths[i] = certPath{c}
	}
	return &Authority{opts: opts, active: active, successor: successor, retiring: paths}
}

// writeStateFiles writes files (name -> content) into dir with the modes
// the Authority uses.
func writeStateFiles(t testing.TB, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		perm := authCertPerm
		if strings.HasSuffix(name, ".key") {
			perm = authKeyPerm
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, perm); err != nil {
			t.Fatal(err)
		}
	}
}

// stateDirContents returns every regular file of dir, name -> content.
func stateDirContents(t testing.TB, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(data)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestOpenAuthorityCreatesACAOnFirstRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	a, created, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil || !created {
		t.Fatalf("got created=%v err=%v, want created=true err=nil", created, err)
	}
	c := a.Active().Cert
	if got, want := c.Subject.CommonName, DefaultCACommonName; got != want {
		t.Errorf("got CN %q, want %q", got, want)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("got public key %T, want ECDSA P-256", c.PublicKey)
	}
	if got, want := c.NotAfter, t0.Add(87600*time.Hour); !got.Equal(want) {
		t.Errorf("got NotAfter %v, want %v (10 years)", got, want)
	}
	if got, want := sortedKeys(stateDirContents(t, dir)), []string{"ca.crt", "ca.key"}; !slices.Equal(got, want) {
		t.Errorf("got files %v, want %v", got, want)
	}
	for name, want := range map[string]fs.FileMode{"ca.key": 0o600, "ca.crt": 0o644, ".": 0o700} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: got mode %#o, want %#o", name, got, want)
		}
	}
	if a.Successor() != nil || len(a.Retiring()) != 0 || a.Dir() != dir {
		t.Errorf("got successor %v, retiring %d, dir %q; want none, 0, %q", a.Successor(), len(a.Retiring()), a.Dir(), dir)
	}

	again, created, err := OpenAuthority(dir, AuthorityOptions{}, t0.Add(time.Hour))
	if err != nil || created {
		t.Fatalf("reopening: got created=%v err=%v, want created=false err=nil", created, err)
	}
	if !again.Active().Cert.Equal(c) || !publicKeyMatches(c.PublicKey, again.Active().Key) {
		t.Errorf("reopening loaded another CA, want the one created first")
	}
}

func TestOpenAuthorityHonoursOptions(t *testing.T) {
	t.Parallel()
	opts := AuthorityOptions{CommonName: "acme CA", KeyAlgorithm: Ed25519, Lifetime: 48 * time.Hour}
	a, _, err := OpenAuthority(t.TempDir(), opts, t0)
	if err != nil {
		t.Fatal(err)
	}
	c := a.Active().Cert
	if c.Subject.CommonName != "acme CA" || c.PublicKeyAlgorithm != x509.Ed25519 || !c.NotAfter.Equal(t0.Add(48*time.Hour)) {
		t.Errorf("got CN %q, %v, NotAfter %v; want acme CA, Ed25519, %v", c.Subject.CommonName, c.PublicKeyAlgorithm, c.NotAfter, t0.Add(48*time.Hour))
	}
	if _, _, err := OpenAuthority(t.TempDir(), AuthorityOptions{KeyAlgorithm: "dsa"}, t0); !errors.Is(err, ErrUnknownKeyAlgorithm) {
		t.Errorf("unknown algorithm: got %v, want ErrUnknownKeyAlgorithm", err)
	}
}

func TestOpenAuthorityLoadsOperatorCAs(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		alg KeyAlgorithm
		// label is the PEM encoding the operator's key file uses.
		label string
	}{
		"should load an RSA CA with a PKCS#1 key":     {alg: RSA2048, label: pemPKCS1},
		"should load an RSA CA with a PKCS#8 key":     {alg: RSA2048, label: pemPKCS8},
		"should load an ECDSA CA with a SEC1 key":     {alg: ECDSAP256, label: pemSEC1},
		"should load an ECDSA CA with a PKCS#8 key":   {alg: ECDSAP256, label: pemPKCS8},
		"should load an Ed25519 CA with a PKCS#8 key": {alg: Ed25519, label: pemPKCS8},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ca := fixtureCA(t, withCAAlgorithm(tc.alg))
			dir := t.TempDir()
			files := map[string][]byte{"ca.crt": ca.CertPEM(), "ca.key": keyPEMAs(t, ca.Key, tc.label)}
			writeStateFiles(t, dir, files)
			a, created, err := OpenAuthority(dir, AuthorityOptions{}, t0)
			if err != nil || created {
				t.Fatalf("got created=%v err=%v, want the operator CA loaded", created, err)
			}
			if !a.Active().Cert.Equal(ca.Cert) {
				t.Fatalf("got another active CA, want the operator's")
			}
			b, _, err := a.IssueBundle(Identity{Service: "web", DNSNames: []string{"web"}}, IssueOptions{Now: t0})
			if err != nil {
				t.Fatalf("issuing from an operator CA: %v", err)
			}
			verifyLeaf(t, b.ServerCert, b.CA, x509.ExtKeyUsageServerAuth, "web")
			if got := stateDirContents(t, dir); got["ca.key"] != string(files["ca.key"]) || got["ca.crt"] != string(files["ca.crt"]) {
				t.Errorf("the operator's files were rewritten, want them untouched")
			}
		})
	}
}

func TestOpenAuthorityRefusesUnusableCAs(t *testing.T) {
	t.Parallel()
	good := fixtureCA(t)
	other := fixtureCA(t)
	leaf := fixtureCA(t, withCANotACA(), withCAKeyUsage(x509.KeyUsageDigitalSignature))
	future := fixtureCA(t, withCAValidity(t0.Add(time.Hour), t0.Add(48*time.Hour)))
	tests := map[string]struct {
		files map[string][]byte
		// wantErr is a substring of the error, which must wrap ErrInvalidCA.
		wantErr string
	}{
		"should refuse a ca.crt without ca.key": {
			files: map[string][]byte{"ca.crt": good.CertPEM()}, wantErr: "ca.crt exists without ca.key"},
		"should refuse a ca.key without ca.crt": {
			files: map[string][]byte{"ca.key": mustKeyPEM(t, good)}, wantErr: "ca.key exists without ca.crt"},
		"should refuse a corrupt ca.crt": {
			files: map[string][]byte{"ca.crt": []byte("not pem"), "ca.key": mustKeyPEM(t, good)}, wantErr: "no CERTIFICATE PEM block"},
		"should refuse a corrupt ca.key": {
			files: map[string][]byte{"ca.crt": good.CertPEM(), "ca.key": truncatedPEM(mustKeyPEM(t, good))}, wantErr: "private key"},
		"should refuse an empty ca.key": {
			files: map[string][]byte{"ca.crt": good.CertPEM(), "ca.key": {}}, wantErr: "no private key PEM block"},
		"should refuse a key that does not match the certificate": {
			files: map[string][]byte{"ca.crt": good.CertPEM(), "ca.key": mustKeyPEM(t, other)}, wantErr: "does not match"},
		"should refuse a certificate that is not a CA": {
			files: map[string][]byte{"ca.crt": leaf.CertPEM(), "ca.key": mustKeyPEM(t, leaf)}, wantErr: "not a CA"},
		"should refuse a CA that is not valid yet, pointing at the clock": {
			files: map[string][]byte{"ca.crt": future.CertPEM(), "ca.key": mustKeyPEM(t, future)}, wantErr: "check the system clock"},
		"should refuse rollover files without an active CA": {
			files: map[string][]byte{"ca-retiring.crt": good.CertPEM()}, wantErr: "refusing to create a new CA"},
		"should refuse a ca-next.crt without ca-next.key": {
			files:   map[string][]byte{"ca.crt": good.CertPEM(), "ca.key": mustKeyPEM(t, good), "ca-next.crt": other.CertPEM()},
			wantErr: "ca-next.crt exists without ca-next.key"},
		"should refuse a successor whose key does not match": {
			files: map[string][]byte{"ca.crt": good.CertPEM(), "ca.key": mustKeyPEM(t, good),
				"ca-next.crt": other.CertPEM(), "ca-next.key": mustKeyPEM(t, good)},
			wantErr: "successor ca-next.crt/ca-next.key"},
		"should refuse a corrupt ca-retiring.crt": {
			files:   map[string][]byte{"ca.crt": good.CertPEM(), "ca.key": mustKeyPEM(t, good), "ca-retiring.crt": []byte("x")},
			wantErr: "ca-retiring.crt"},
		"should refuse a creation marker next to a lone corrupt key": {
			files: map[string][]byte{"ca.creating": {}, "ca.key": []byte("junk")}, wantErr: "interrupted creation"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeStateFiles(t, dir, tc.files)
			before := stateDirContents(t, dir)
			a, created, err := OpenAuthority(dir, AuthorityOptions{}, t0)
			if !errors.Is(err, ErrInvalidCA) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one wrapping ErrInvalidCA and containing %q", err, tc.wantErr)
			}
			if a != nil || created {
				t.Errorf("got authority %v created=%v, want nil and false", a, created)
			}
			if after := stateDirContents(t, dir); !equalContents(before, after) {
				t.Errorf("got files %v after the failed open, want them untouched: %v", sortedKeys(after), sortedKeys(before))
			}
		})
	}
}

func equalContents(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestOpenAuthorityReturnsAnExpiredCAForRecovery(t *testing.T) {
	t.Parallel()
	old := fixtureCA(t, withCAValidity(t0.Add(-48*time.Hour), t0.Add(-time.Hour)))
	dir := t.TempDir()
	writeStateFiles(t, dir, map[string][]byte{"ca.crt": old.CertPEM(), "ca.key": mustKeyPEM(t, old)})

	a, created, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if !errors.Is(err, ErrCAExpired) || errors.Is(err, ErrInvalidCA) {
		t.Fatalf("got error %v, want ErrCAExpired and not ErrInvalidCA", err)
	}
	if a == nil || created || !a.Active().Cert.Equal(old.Cert) {
		t.Fatalf("got authority %v created=%v, want the loaded expired CA", a, created)
	}
	if _, _, err := a.IssueBundle(Identity{Service: "web", DNSNames: []string{"web"}}, IssueOptions{Now: t0}); !errors.Is(err, ErrCAExpired) {
		t.Errorf("issuing from an expired CA: got %v, want ErrCAExpired", err)
	}
	// Recovery is an ordinary rollover.
	if _, err := a.CreateSuccessor(t0); err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenAuthority(dir, AuthorityOptions{}, t0); err != nil {
		t.Errorf("reopening after recovery: got %v, want nil", err)
	}
}

func TestAuthorityRollover(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	a, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	old := a.Active()
	reopen := func(step string) *Authority {
		t.Helper()
		b, created, err := OpenAuthority(dir, AuthorityOptions{}, t0)
		if err != nil || created {
			t.Fatalf("%s: reopening: got created=%v err=%v", step, created, err)
		}
		if !bytes.Equal(b.TrustBundle(), a.TrustBundle()) || !b.Active().Cert.Equal(a.Active().Cert) {
			t.Fatalf("%s: reopened authority differs from the live one", step)
		}
		return b
	}
	if err := a.Promote(); !errors.Is(err, ErrNoSuccessor) {
		t.Errorf("promoting without a successor: got %v, want ErrNoSuccessor", err)
	}

	next, err := a.CreateSuccessor(t0)
	if err != nil {
		t.Fatal(err)
	}
	if want := DefaultCACommonName + " 2026-11-29T12:00:00Z"; next.Cert.Subject.CommonName != want {
		t.Errorf("got successor CN %q, want %q", next.Cert.Subject.CommonName, want)
	}
	if _, err := a.CreateSuccessor(t0); !errors.Is(err, ErrSuccessorExists) {
		t.Errorf("second CreateSuccessor: got %v, want ErrSuccessorExists", err)
	}
	wantBundle(t, "after CreateSuccessor", a, old.Cert, next.Cert)
	if a.Active() != old {
		t.Errorf("CreateSuccessor changed the active CA, want issuance unchanged")
	}
	reopen("after CreateSuccessor")

	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	if !a.Active().Cert.Equal(next.Cert) || a.Successor() != nil {
		t.Errorf("after Promote: got active %q and successor %v, want the successor active and none left",
			a.Active().Cert.Subject.CommonName, a.Successor())
	}
	wantBundle(t, "after Promote", a, next.Cert, old.Cert)
	if got := sortedKeys(stateDirContents(t, dir)); !slices.Equal(got, []string{"ca-retiring.crt", "ca.crt", "ca.key"}) {
		t.Errorf("after Promote: got files %v, want ca-retiring.crt, ca.crt, ca.key", got)
	}
	reopen("after Promote")
	b, _, err := a.IssueBundle(Identity{Service: "web", DNSNames: []string{"web"}}, IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if leaf := mustParseCert(t, b.ServerCert); leaf.CheckSignatureFrom(next.Cert) != nil {
		t.Errorf("after Promote: leaf not signed by the promoted CA")
	}

	if err := a.Retire(); err != nil {
		t.Fatal(err)
	}
	wantBundle(t, "after Retire", a, next.Cert)
	reopen("after Retire")
	if err := a.Retire(); err != nil {
		t.Errorf("a second Retire: got %v, want a no-op", err)
	}
}

// wantBundle checks TrustBundle, TrustPool and the retiring list against
// want, in order.
func wantBundle(t *testing.T, step string, a *Authority, want ...*x509.Certificate) {
	t.Helper()
	got, err := ParseCertificatesPEM(a.TrustBundle())
	if err != nil {
		t.Fatalf("%s: TrustBundle: %v", step, err)
	}
	if !slices.EqualFunc(got, want, (*x509.Certificate).Equal) {
		t.Errorf("%s: got trust bundle %s, want %s", step, certCommonNames(got), certCommonNames(want))
	}
	for _, c := range want {
		if _, err := c.Verify(x509.VerifyOptions{Roots: a.TrustPool(), CurrentTime: t0}); err != nil {
			t.Errorf("%s: TrustPool does not hold %q: %v", step, c.Subject.CommonName, err)
		}
	}
}

func mustParseCert(t testing.TB, p []byte) *x509.Certificate {
	t.Helper()
	c, err := parseLeafPEM(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestAuthorityIsSafeForConcurrentUse issues bundles from several
// goroutines while a rollover runs, and checks that every bundle is
// self-consistent: its ca.crt always holds the CA that signed its leaves.
// Run it with -race.
func TestAuthorityIsSafeForConcurrentUse(t *testing.T) {
	t.Parallel()
	a, _, err := OpenAuthority(t.TempDir(), AuthorityOptions{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	const workers, perWorker = 4, 15
	bundles := make(chan *BundleFiles, workers*perWorker)
	errs := make(chan error, workers)
	for range workers {
		go func() {
			for range perWorker {
				b, _, err := a.IssueBundle(webIdentity, IssueOptions{Now: t0})
				if err != nil {
					errs <- err
					return
				}
				// Readers race with the rollover too; their answers
				// depend on timing, so only -race judges them.
				_ = Validate(b, Expectation{Identity: webIdentity, Authority: a, Now: t0})
				_ = a.TrustPool()
				bundles <- b
			}
			errs <- nil
		}()
	}
	if _, err := a.CreateSuccessor(t0); err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	for range workers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(bundles)
	for b := range bundles {
		verifyLeaf(t, b.ServerCert, b.CA, x509.ExtKeyUsageServerAuth, "web")
		verifyLeaf(t, b.ClientCert, b.CA, x509.ExtKeyUsageClientAuth, "")
	}
}
