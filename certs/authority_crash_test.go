package certs

import (
	"crypto/x509"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestAuthorityCrashStatesLoad writes, file by file, every state that
// creating the CA, CreateSuccessor, Promote and Retire can leave behind when
// the process dies between two durable steps, and proves that each one
// opens as a consistent authority (the state before or after the step) and
// is cleaned up to the state after.
func TestAuthorityCrashStatesLoad(t *testing.T) {
	t.Parallel()
	a := fixtureCA(t, withCACommonName("A (active)"))
	b := fixtureCA(t, withCACommonName("B (successor)"))
	r := fixtureCA(t, withCACommonName("R (retiring from an earlier rollover)"))
	keyA, keyB := mustKeyPEM(t, a), mustKeyPEM(t, b)
	retR, retRA := r.CertPEM(), append(r.CertPEM(), a.CertPEM()...)
	corp := newCorpPKI(t, "I (imported)")
	imp := corp.importedCA(t)
	impCert, impKey := imp.ChainPEM(), mustKeyPEM(t, imp)
	staged := map[string][]byte{"ca-import.crt": impCert, "ca-import.key": impKey}
	with := func(base map[string][]byte, more ...map[string][]byte) map[string][]byte {
		out := maps.Clone(base)
		for _, m := range more {
			maps.Copy(out, m)
		}
		return out
	}
	activeA := map[string][]byte{"ca.crt": a.CertPEM(), "ca.key": keyA}

	tests := map[string]struct {
		files map[string][]byte
		// wantCreated is OpenAuthority's created result.
		wantCreated bool
		// wantActiveKey is the CA whose key must be active; nil means a
		// freshly generated one.
		wantActiveKey *CA
		// wantActiveCert is the active certificate; nil means a new one
		// (self-signed for wantActiveKey).
		wantActiveCert *x509.Certificate
		// wantSuccessor is the successor, nil for none.
		wantSuccessor *CA
		// wantRetiring is Retiring(), in order.
		wantRetiring []*x509.Certificate
		// wantFiles is the directory listing after OpenAuthority repaired it.
		wantFiles []string
		// wantImported is the active CA's Imported.
		wantImported bool
	}{
		"should create a CA when creation died before writing ca.key": {
			files:       map[string][]byte{"ca.creating": nil},
			wantCreated: true, wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should finish creation with the lone ca.key it left behind": {
			files:       map[string][]byte{"ca.creating": nil, "ca.key": keyA},
			wantCreated: true, wantActiveKey: a, wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should keep a created CA when only the marker removal was lost": {
			files:         map[string][]byte{"ca.creating": nil, "ca.crt": a.CertPEM(), "ca.key": keyA},
			wantActiveKey: a, wantActiveCert: a.Cert, wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should drop a lone ca-next.key when CreateSuccessor died before ca-next.crt": {
			files:         map[string][]byte{"ca.crt": a.CertPEM(), "ca.key": keyA, "ca-next.key": keyB},
			wantActiveKey: a, wantActiveCert: a.Cert, wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should load the successor once CreateSuccessor finished": {
			files:         map[string][]byte{"ca.crt": a.CertPEM(), "ca.key": keyA, "ca-next.crt": b.CertPEM(), "ca-next.key": keyB, "ca-retiring.crt": retR},
			wantActiveKey: a, wantActiveCert: a.Cert, wantSuccessor: b, wantRetiring: []*x509.Certificate{r.Cert},
			wantFiles: []string{"ca-next.crt", "ca-next.key", "ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should still issue from A when Promote died after step 1 (ca-retiring.crt)": {
			files:         map[string][]byte{"ca.crt": a.CertPEM(), "ca.key": keyA, "ca-next.crt": b.CertPEM(), "ca-next.key": keyB, "ca-retiring.crt": retRA},
			wantActiveKey: a, wantActiveCert: a.Cert, wantSuccessor: b, wantRetiring: []*x509.Certificate{r.Cert},
			wantFiles: []string{"ca-next.crt", "ca-next.key", "ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should switch to B when Promote died after step 2 (ca.crt) with A's key still in ca.key": {
			files:         map[string][]byte{"ca.crt": b.CertPEM(), "ca.key": keyA, "ca-next.crt": b.CertPEM(), "ca-next.key": keyB, "ca-retiring.crt": retRA},
			wantActiveKey: b, wantActiveCert: b.Cert, wantRetiring: []*x509.Certificate{r.Cert, a.Cert},
			wantFiles: []string{"ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should finish Promote when it died after step 3 (ca.key)": {
			files:         map[string][]byte{"ca.crt": b.CertPEM(), "ca.key": keyB, "ca-next.crt": b.CertPEM(), "ca-next.key": keyB, "ca-retiring.crt": retRA},
			wantActiveKey: b, wantActiveCert: b.Cert, wantRetiring: []*x509.Certificate{r.Cert, a.Cert},
			wantFiles: []string{"ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should finish Promote when it died after removing ca-next.crt": {
			files:         map[string][]byte{"ca.crt": b.CertPEM(), "ca.key": keyB, "ca-next.key": keyB, "ca-retiring.crt": retRA},
			wantActiveKey: b, wantActiveCert: b.Cert, wantRetiring: []*x509.Certificate{r.Cert, a.Cert},
			wantFiles: []string{"ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should load a finished Promote": {
			files:         map[string][]byte{"ca.crt": b.CertPEM(), "ca.key": keyB, "ca-retiring.crt": retRA},
			wantActiveKey: b, wantActiveCert: b.Cert, wantRetiring: []*x509.Certificate{r.Cert, a.Cert},
			wantFiles: []string{"ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should install a staged import as the first CA": {
			files: staged, wantCreated: true, wantActiveKey: imp, wantActiveCert: imp.Cert, wantImported: true,
			wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should install the staged import when its installation died before ca.key": {
			files: with(staged, map[string][]byte{"ca.creating": nil}), wantCreated: true, wantActiveKey: imp, wantActiveCert: imp.Cert, wantImported: true,
			wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should finish installing the staged import, not self-sign its key, when it died after ca.key": {
			files: with(staged, map[string][]byte{"ca.creating": nil, "ca.key": impKey}), wantCreated: true, wantActiveKey: imp, wantActiveCert: imp.Cert, wantImported: true,
			wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should drop the staged files when installing the import died after ca.crt": {
			files: with(staged, map[string][]byte{"ca.creating": nil, "ca.key": impKey, "ca.crt": impCert}), wantActiveKey: imp, wantActiveCert: imp.Cert, wantImported: true,
			wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should drop the staged certificate left after ca-import.key was removed": {
			files:         map[string][]byte{"ca.creating": nil, "ca.key": impKey, "ca.crt": impCert, "ca-import.crt": impCert},
			wantActiveKey: imp, wantActiveCert: imp.Cert, wantImported: true, wantFiles: []string{"ca.crt", "ca.key"},
		},
		"should create a CA of its own beside a half-staged import, and leave it": {
			files: map[string][]byte{"ca-import.crt": impCert}, wantCreated: true, wantFiles: []string{"ca-import.crt", "ca.crt", "ca.key"},
		},
		"should keep a staged import that waits for the rotator": {
			files: with(activeA, staged), wantActiveKey: a, wantActiveCert: a.Cert,
			wantFiles: []string{"ca-import.crt", "ca-import.key", "ca.crt", "ca.key"},
		},
		"should drop a staged import already adopted as the successor": {
			files: with(activeA, staged, map[string][]byte{"ca-next.crt": impCert, "ca-next.key": impKey}), wantActiveKey: a, wantActiveCert: a.Cert, wantSuccessor: imp,
			wantFiles: []string{"ca-next.crt", "ca-next.key", "ca.crt", "ca.key"},
		},
		"should drop the staged certificate when adopting it died after removing ca-import.key": {
			files:         with(activeA, map[string][]byte{"ca-next.crt": impCert, "ca-next.key": impKey, "ca-import.crt": impCert}),
			wantActiveKey: a, wantActiveCert: a.Cert, wantSuccessor: imp, wantFiles: []string{"ca-next.crt", "ca-next.key", "ca.crt", "ca.key"},
		},
		"should drop a lone ca-next.key when adopting an import died before ca-next.crt, and keep the import": {
			files: with(activeA, staged, map[string][]byte{"ca-next.key": impKey}), wantActiveKey: a, wantActiveCert: a.Cert,
			wantFiles: []string{"ca-import.crt", "ca-import.key", "ca.crt", "ca.key"},
		},
		"should switch to the imported CA, chain and all, when Promote died after step 2": {
			files: map[string][]byte{"ca.crt": impCert, "ca.key": keyA, "ca-next.crt": impCert, "ca-next.key": impKey,
				"ca-retiring.crt": a.CertPEM()},
			wantActiveKey: imp, wantActiveCert: imp.Cert, wantImported: true, wantRetiring: []*x509.Certificate{a.Cert},
			wantFiles: []string{"ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should read a retiring intermediate with its chain next to a retiring root": {
			files:         with(activeA, map[string][]byte{"ca-retiring.crt": append(corp.inter.ChainPEM(), retR...)}),
			wantActiveKey: a, wantActiveCert: a.Cert, wantRetiring: []*x509.Certificate{corp.inter.Cert, r.Cert},
			wantFiles: []string{"ca-retiring.crt", "ca.crt", "ca.key"},
		},
		"should load a finished Retire": {
			files:         map[string][]byte{"ca.crt": b.CertPEM(), "ca.key": keyB},
			wantActiveKey: b, wantActiveCert: b.Cert, wantFiles: []string{"ca.crt", "ca.key"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeStateFiles(t, dir, tc.files)
			got, created, err := OpenAuthority(dir, AuthorityOptions{}, t0)
			if err != nil || created != tc.wantCreated {
				t.Fatalf("got created=%v err=%v, want created=%v err=nil", created, err, tc.wantCreated)
			}
			act := got.Active()
			if tc.wantActiveKey != nil && !publicKeyMatches(tc.wantActiveKey.Cert.PublicKey, act.Key) {
				t.Errorf("got active key of %q, want %q's", act.Cert.Subject.CommonName, tc.wantActiveKey.Cert.Subject.CommonName)
			}
			if tc.wantActiveCert != nil && !act.Cert.Equal(tc.wantActiveCert) {
				t.Errorf("got active %q, want %q", act.Cert.Subject.CommonName, tc.wantActiveCert.Subject.CommonName)
			}
			if act.Imported != tc.wantImported {
				t.Errorf("got active imported=%v, want %v", act.Imported, tc.wantImported)
			}
			if s := got.Successor(); (s == nil) != (tc.wantSuccessor == nil) || (s != nil && !s.Cert.Equal(tc.wantSuccessor.Cert)) {
				t.Errorf("got successor %v, want %v", s, tc.wantSuccessor)
			}
			if ret := got.Retiring(); !slices.EqualFunc(ret, tc.wantRetiring, (*x509.Certificate).Equal) {
				t.Errorf("got retiring %s, want %s", certCommonNames(ret), certCommonNames(tc.wantRetiring))
			}
			if files := sortedKeys(stateDirContents(t, dir)); !slices.Equal(files, tc.wantFiles) {
				t.Errorf("got files %v after opening, want %v", files, tc.wantFiles)
			}
			// The repaired directory must open to the same authority.
			again, _, err := OpenAuthority(dir, AuthorityOptions{}, t0)
			if err != nil || !again.Active().Cert.Equal(act.Cert) || string(again.TrustBundle()) != string(got.TrustBundle()) {
				t.Errorf("reopening the repaired directory: got err %v or another authority, want the same", err)
			}
		})
	}
}

// TestAuthorityEveryStepLeavesALoadableState runs the real operations with
// a hook that copies the state directory after each durable step, then
// opens every copy: whatever the code's actual write order, a crash after
// any step must leave a directory that loads, whose active CA is the one
// before or after the operation, and whose trust bundle still holds both.
func TestAuthorityEveryStepLeavesALoadableState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var snaps []string
	var steps []string
	hook := func(step string) {
		steps = append(steps, step)
		snaps = append(snaps, copyStateDir(t, dir))
	}
	a, _, err := openAuthority(dir, AuthorityOptions{}, t0, hook)
	if err != nil {
		t.Fatal(err)
	}
	created := len(snaps)
	old := a.Active()
	if _, err := a.CreateSuccessor(t0); err != nil {
		t.Fatal(err)
	}
	next := a.Successor()
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	if err := a.Retire(); err != nil {
		t.Fatal(err)
	}
	wantSteps := []string{
		"write ca.creating", "write ca.key", "write ca.crt", "remove ca.creating",
		"write ca-next.key", "write ca-next.crt",
		"write ca-retiring.crt", "write ca.crt", "write ca.key", "remove ca-next.crt", "remove ca-next.key",
		"remove ca-retiring.crt",
	}
	if !slices.Equal(steps, wantSteps) {
		t.Errorf("got steps %q, want %q", steps, wantSteps)
	}
	for i, snap := range snaps {
		got, _, err := OpenAuthority(snap, AuthorityOptions{}, t0)
		if err != nil {
			t.Errorf("after step %d (%s): got %v, want a loadable directory", i, steps[i], err)
			continue
		}
		if i < created {
			continue // any CA is fine before the first one existed
		}
		act := got.Active().Cert
		if !act.Equal(old.Cert) && !act.Equal(next.Cert) {
			t.Errorf("after step %d (%s): got active %q, want the old or the new CA", i, steps[i], act.Subject.CommonName)
		}
		trusted, _ := ParseCertificatesPEM(got.TrustBundle())
		retired := i == len(snaps)-1
		for _, c := range []*x509.Certificate{old.Cert, next.Cert} {
			if i >= created+1 && !retired && !slices.ContainsFunc(trusted, c.Equal) {
				t.Errorf("after step %d (%s): trust bundle %s lacks %q", i, steps[i], certCommonNames(trusted), c.Subject.CommonName)
			}
		}
	}
}

// copyStateDir copies the regular files of dir into a new temporary
// directory, keeping their modes, and returns it.
func copyStateDir(t *testing.T, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, fi.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
