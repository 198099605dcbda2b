package main

// Tests of `controller ca import`, `ca rotate --to-cert` and `ca export`.

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// operatorFiles are an operator's CA files on disk, as the flags name them.
type operatorFiles struct {
	cert, key, chain string // paths; chain "" when not given
	ca               *testpki.CA
}

// writeOperatorFiles writes ca's certificate and key, and the chain PEM
// when not nil, into a directory of their own.
func writeOperatorFiles(t *testing.T, ca *testpki.CA, certPEM, keyPEM, chainPEM []byte) operatorFiles {
	t.Helper()
	dir := t.TempDir()
	f := operatorFiles{cert: filepath.Join(dir, "issuing.crt"), key: filepath.Join(dir, "issuing.key"), ca: ca}
	files := map[string][]byte{f.cert: certPEM, f.key: keyPEM}
	if chainPEM != nil {
		f.chain = filepath.Join(dir, "chain.pem")
		files[f.chain] = chainPEM
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// args are the import flags naming f, with the given flag names.
func (f operatorFiles) args(certFlag, keyFlag string) []string {
	a := []string{"--" + certFlag, f.cert, "--" + keyFlag, f.key}
	if f.chain != "" {
		a = append(a, "--chain", f.chain)
	}
	return a
}

// corpIntermediate is an operator's issuing CA under a root that allows
// it, valid for years around caNow.
func corpIntermediate(t *testing.T, opts ...testpki.Option) (*testpki.CA, *testpki.CA) {
	t.Helper()
	valid := testpki.WithValidity(caNow.Add(-24*time.Hour), caNow.Add(3*365*24*time.Hour))
	root := testpki.NewCA(t, testpki.WithCommonName("corp root"), testpki.WithMaxPathLen(1), valid)
	return root.NewIntermediate(t, append([]testpki.Option{testpki.WithCommonName("corp issuing CA"), valid}, opts...)...), root
}

// runningState is a state dir as a running controller keeps it: its CA
// files and an idle rollover status naming the active CA.
func runningState(t *testing.T) (string, *certs.Authority) {
	t.Helper()
	dir := t.TempDir()
	a, _, err := certs.OpenAuthority(dir, certs.AuthorityOptions{}, caNow)
	if err != nil {
		t.Fatal(err)
	}
	writeStatusFile(t, dir, rotation.Status{Phase: rotation.PhaseIdle,
		ActiveCA: rotation.CAStatus{Fingerprint: probe.Fingerprint(a.Active().Cert), Subject: a.Active().Cert.Subject.String()}})
	return dir, a
}

// checksums maps every entry under dir to its mode and the SHA-256 of its
// content: equal maps mean nothing was written, created or removed.
func checksums(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		sum := ""
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			h := sha256.Sum256(data)
			sum = hex.EncodeToString(h[:])
		}
		out[strings.TrimPrefix(path, dir)] = fmt.Sprintf("%v %s", fi.Mode(), sum)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameChecksums(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestCAImportRefusesEachFailedCheckAndWritesNothing(t *testing.T) {
	t.Parallel()
	at := func(nb, na time.Duration) testpki.Option { return testpki.WithValidity(caNow.Add(nb), caNow.Add(na)) }
	good, root := corpIntermediate(t)
	other, _ := corpIntermediate(t)
	strictRoot := testpki.NewCA(t, testpki.WithCommonName("strict root"), at(-time.Hour, 3*365*24*time.Hour))
	underStrict := strictRoot.NewIntermediate(t, at(-time.Hour, 3*365*24*time.Hour))
	mk := func(opts ...testpki.Option) *testpki.CA {
		return root.NewIntermediate(t, append([]testpki.Option{at(-time.Hour, 3*365*24*time.Hour)}, opts...)...)
	}
	notCA, noSign := mk(testpki.NotCA()), mk(testpki.WithKeyUsage(x509.KeyUsageDigitalSignature))
	future, expired, soon := mk(at(time.Hour, 365*24*time.Hour)), mk(at(-48*time.Hour, -time.Hour)), mk(at(-time.Hour, 30*24*time.Hour))
	emailOnly := mk(testpki.WithExtKeyUsage(x509.ExtKeyUsageEmailProtection))
	with := func(ca *testpki.CA, chain []byte) operatorFiles {
		return writeOperatorFiles(t, ca, ca.CertPEM, ca.KeyPEM, chain)
	}
	tests := map[string]struct {
		files      operatorFiles
		wantReason certs.ImportReason // the check stderr must name
	}{
		"should refuse a certificate file that is not PEM":                 {files: writeOperatorFiles(t, good, []byte("hello"), good.KeyPEM, root.CertPEM), wantReason: certs.ImportUnreadable},
		"should refuse a key of another CA":                                {files: writeOperatorFiles(t, good, good.CertPEM, other.KeyPEM, root.CertPEM), wantReason: certs.ImportKeyMismatch},
		"should refuse a certificate without CA:TRUE":                      {files: with(notCA, root.CertPEM), wantReason: certs.ImportNotCA},
		"should refuse a CA whose key usage lacks keyCertSign":             {files: with(noSign, root.CertPEM), wantReason: certs.ImportNoCertSign},
		"should refuse an intermediate without its chain":                  {files: with(good, nil), wantReason: certs.ImportChainIncomplete},
		"should refuse an intermediate its root's path length forbids":     {files: with(underStrict, strictRoot.CertPEM), wantReason: certs.ImportPathLength},
		"should refuse a CA that is not valid yet":                         {files: with(future, root.CertPEM), wantReason: certs.ImportNotYetValid},
		"should refuse an expired CA":                                      {files: with(expired, root.CertPEM), wantReason: certs.ImportExpired},
		"should refuse a CA that expires within a leaf lifetime":           {files: with(soon, root.CertPEM), wantReason: certs.ImportExpiresSoon},
		"should refuse a CA whose extended key usage forbids TLS leaves":   {files: with(emailOnly, root.CertPEM), wantReason: certs.ImportChainDoesNotVerify},
		"should refuse through ca rotate --to-cert the same way as import": {files: with(good, nil), wantReason: certs.ImportChainIncomplete},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, state := range []string{"running", "first install"} {
				dir := t.TempDir()
				if state == "running" {
					dir, _ = runningState(t)
				}
				before := checksums(t, dir)
				args := append([]string{"import", "--state-dir", dir}, tc.files.args("cert", "key")...)
				if strings.Contains(name, "rotate") {
					args = append([]string{"rotate", "--state-dir", dir}, tc.files.args("to-cert", "to-key")...)
				}
				code, out, errOut := runCAForTest(t, nil, args...)
				if code != caRefused {
					t.Errorf("%s: got exit %d (stdout %q, stderr %q), want %d", state, code, out, errOut, caRefused)
				}
				if want := "check " + string(tc.wantReason) + " failed"; !strings.Contains(errOut, want) || !strings.Contains(errOut, "nothing was written") {
					t.Errorf("%s: got stderr %q, want it to name %q and say nothing was written", state, errOut, want)
				}
				if after := checksums(t, dir); !sameChecksums(before, after) {
					t.Errorf("%s: got state dir %v after the refusal, want it unchanged from %v", state, after, before)
				}
			}
		})
	}
}

func TestCAImportBeforeTheFirstStart(t *testing.T) {
	t.Parallel()
	inter, root := corpIntermediate(t)
	files := writeOperatorFiles(t, inter, inter.CertPEM, inter.KeyPEM, root.CertPEM)
	dir := filepath.Join(t.TempDir(), "state") // not even created yet
	code, out, errOut := runCAForTest(t, nil, append([]string{"import", "--state-dir", dir}, files.args("cert", "key")...)...)
	if code != caOK {
		t.Fatalf("got exit %d (%s), want 0", code, errOut)
	}
	if !strings.Contains(out, "starts with this one") || !strings.Contains(out, "CN=corp root") {
		t.Errorf("got stdout %q, want it to say the controller starts with it and that peers trust the root", out)
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Error("got a key in the output")
	}
	if fi, err := os.Stat(filepath.Join(dir, "ca-import.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("got staged key %v (%v), want mode 0600", fi, err)
	}
	var req rotation.Request
	raw, err := os.ReadFile(filepath.Join(dir, rotation.RequestFile))
	if err != nil || json.Unmarshal(raw, &req) != nil || req.Import != probe.Fingerprint(inter.Cert) {
		t.Errorf("got request %s (%v), want one naming the intermediate's fingerprint", raw, err)
	}
	a, created, err := certs.OpenAuthority(dir, certs.AuthorityOptions{}, caNow)
	if err != nil || !created || !a.Active().Cert.Equal(inter.Cert) {
		t.Fatalf("got created=%v err=%v, want the controller to start with the imported CA", created, err)
	}
}

func TestCAImportNextToARunningController(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][2]string{{"import", "cert"}, {"rotate", "to-cert"}} {
		t.Run(cmd[0], func(t *testing.T) {
			t.Parallel()
			inter, root := corpIntermediate(t)
			files := writeOperatorFiles(t, inter, inter.ChainPEM(), inter.KeyPEM, nil) // a full-chain file, no --chain
			dir, _ := runningState(t)
			before := checksums(t, dir)
			keyFlag := strings.Replace(cmd[1], "cert", "key", 1)
			code, out, errOut := runCAForTest(t, nil, append([]string{cmd[0], "--state-dir", dir}, files.args(cmd[1], keyFlag)...)...)
			if code != caOK {
				t.Fatalf("got exit %d (%s), want 0", code, errOut)
			}
			if !strings.Contains(out, "roll over to it") || !strings.Contains(out, "controller ca export") {
				t.Errorf("got stdout %q, want it to say the controller rolls over and how to export the trust bundle", out)
			}
			after := checksums(t, dir)
			for _, name := range []string{"/ca.crt", "/ca.key", "/" + rotation.StatusFile} {
				if before[name] != after[name] {
					t.Errorf("got %s changed, want the controller's own files untouched", name)
				}
			}
			var added []string
			for name := range after {
				if _, ok := before[name]; !ok {
					added = append(added, name)
				}
			}
			slices.Sort(added)
			if want := []string{"/ca-import.crt", "/ca-import.key", "/" + rotation.RequestFile}; !slices.Equal(added, want) {
				t.Errorf("got new files %v, want %v", added, want)
			}
			fp, staged, err := certs.ReadStagedImport(dir, certs.ImportOptions{Now: caNow})
			if err != nil || fp != probe.Fingerprint(inter.Cert) || !staged.Anchor().Equal(root.Cert) {
				t.Errorf("got staged %q (%v), want the intermediate under its root, ready for the rotator", fp, err)
			}
		})
	}
}

func TestCAImportWritesNothingDuringARolloverOrForTheActiveCA(t *testing.T) {
	t.Parallel()
	inter, root := corpIntermediate(t)
	files := writeOperatorFiles(t, inter, inter.CertPEM, inter.KeyPEM, root.CertPEM)
	tests := map[string]struct {
		status   rotation.Status
		wantCode int
		wantOut  string // substring of stdout+stderr
	}{
		"should refuse while a rollover runs": {
			status: rotation.Status{Phase: rotation.PhaseOverlap, Since: caNow.Add(-time.Hour)}, wantCode: caRefused, wantOut: "in progress (phase overlap"},
		"should do nothing for the CA that is already active": {
			status: rotation.Status{Phase: rotation.PhaseIdle, ActiveCA: rotation.CAStatus{Fingerprint: probe.Fingerprint(inter.Cert)}}, wantCode: caOK, wantOut: "already the active CA"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir, _ := runningState(t)
			writeStatusFile(t, dir, tc.status)
			before := checksums(t, dir)
			code, out, errOut := runCAForTest(t, nil, append([]string{"import", "--state-dir", dir}, files.args("cert", "key")...)...)
			if code != tc.wantCode || !strings.Contains(out+errOut, tc.wantOut) {
				t.Errorf("got exit %d output %q %q, want %d and %q", code, out, errOut, tc.wantCode, tc.wantOut)
			}
			if after := checksums(t, dir); !sameChecksums(before, after) {
				t.Errorf("got state dir %v, want it unchanged from %v", after, before)
			}
		})
	}
}

func TestCAImportUsage(t *testing.T) {
	t.Parallel()
	tests := map[string][]string{
		"should want --key with --cert":               {"import", "--cert", "x.crt"},
		"should want both flags for import":           {"import"},
		"should want --to-cert with --to-key":         {"rotate", "--to-key", "x.key"},
		"should want --to-cert with --chain":          {"rotate", "--chain", "chain.pem"},
		"should refuse a leaf lifetime that is not":   {"import", "--cert", "x", "--key", "y", "--leaf-lifetime", "soon"},
		"should report a certificate file not found":  {"import", "--cert", "/nonexistent/x.crt", "--key", "/nonexistent/x.key"},
		"should refuse an argument after the options": {"export", "extra"},
	}
	for name, args := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			code, _, errOut := runCAForTest(t, nil, append(args, "--state-dir", dir)...)
			if code != caUsage || errOut == "" {
				t.Errorf("got exit %d stderr %q, want %d and a message", code, errOut, caUsage)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("got %d files in the state dir, want none", len(entries))
			}
		})
	}
}

func TestCAImportHonoursTheControllersLeafLifetime(t *testing.T) {
	t.Parallel()
	_, root := corpIntermediate(t)
	short := root.NewIntermediate(t, testpki.WithValidity(caNow.Add(-time.Hour), caNow.Add(30*24*time.Hour)))
	files := writeOperatorFiles(t, short, short.CertPEM, short.KeyPEM, root.CertPEM)
	dir := t.TempDir()
	env := map[string]string{"CRANK_LEAF_LIFETIME": "168h"}
	if code, _, errOut := runCAForTest(t, env, append([]string{"import", "--state-dir", dir}, files.args("cert", "key")...)...); code != caOK {
		t.Errorf("got exit %d (%s) with 7-day leaves, want a 30-day CA accepted", code, errOut)
	}
}

func TestCAExport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, errOut := runCAForTest(t, nil, "export", "--state-dir", dir); code != caUsage || !strings.Contains(errOut, "no CA yet") {
		t.Errorf("got exit %d stderr %q for an empty state dir, want %d and 'no CA yet'", code, errOut, caUsage)
	}
	dir, a := runningState(t)
	if _, err := a.CreateSuccessor(caNow); err != nil {
		t.Fatal(err)
	}
	before := checksums(t, dir)
	code, out, errOut := runCAForTest(t, nil, "export", "--state-dir", dir)
	if code != caOK || out != string(a.TrustBundle()) {
		t.Fatalf("got exit %d stdout %q (%s), want the trust bundle", code, out, errOut)
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Error("got a key in the output")
	}
	if !strings.Contains(errOut, "2 trust anchor(s)") || !strings.Contains(errOut, "rollover") {
		t.Errorf("got stderr %q, want both anchors named and the rollover said", errOut)
	}
	if after := checksums(t, dir); !sameChecksums(before, after) {
		t.Errorf("got state dir changed by export, want it read only")
	}
}

func TestCAStatusShowsAnImportedCAAndTheLastImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeStatusFile(t, dir, rotation.Status{Phase: rotation.PhaseIdle,
		ActiveCA: rotation.CAStatus{Fingerprint: "abcdef0123456789abcdef", Subject: "CN=corp issuing CA", Issuer: "CN=corp root", Imported: true, NotAfter: caNow.Add(900 * time.Hour)},
		Import:   &rotation.ImportStatus{Fingerprint: "0011223344556677", State: rotation.ImportRefused, Reason: string(certs.ImportExpiresSoon), Message: "check failed", At: caNow}})
	code, out, errOut := runCAForTest(t, nil, "status", "--state-dir", dir)
	if code != caOK {
		t.Fatalf("got exit %d (%s), want 0", code, errOut)
	}
	for _, want := range []string{"CN=corp issuing CA (issued by CN=corp root) [imported]", "none: the CA was imported", "refused (expires-within-leaf-lifetime)"} {
		if !strings.Contains(out, want) {
			t.Errorf("got stdout %q, want it to contain %q", out, want)
		}
	}
}
