//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// A stack on the controller's own CA rolls over to an operator's
// intermediate, imported the way an operator does it: `docker exec
// <controller> /controller ca import`. Material without its chain is
// refused first, naming the check. Afterwards every service trusts only the
// operator's root and serves its leaf followed by the intermediate, and
// `controller ca export` prints that root.
func TestRotationToAnImportedIntermediate(t *testing.T) {
	t.Parallel()
	f := rtNew(t)
	f.start(t)
	svcs := f.services(t, []string{"platform", "email-parser"})
	f.waitAllMTLS(t, svcs, lvDeadline)
	old := f.mustCAStatus(t)

	root := testpki.NewCA(t, testpki.WithCommonName("e2e corp root"), testpki.WithMaxPathLen(1))
	inter := root.NewIntermediate(t, testpki.WithCommonName("e2e corp issuing CA"))
	f.h.WriteVolumeFile(t, f.state, "in/issuing.crt", inter.CertPEM, 0o644)
	f.h.WriteVolumeFile(t, f.state, "in/issuing.key", inter.KeyPEM, 0o600)
	f.h.WriteVolumeFile(t, f.state, "in/chain.pem", root.CertPEM, 0o644)
	importArgs := []string{"ca", "import", "--cert", "/state/in/issuing.crt", "--key", "/state/in/issuing.key"}

	_, errOut, code, err := f.controllerExec(importArgs...)
	if err != nil || code != 1 || !strings.Contains(errOut, "check chain-incomplete failed") {
		t.Fatalf("controller ca import without --chain: got exit %d, err %v, stderr %q; want 1 naming chain-incomplete", code, err, errOut)
	}
	t.Logf("controller ca import without --chain: %s", strings.TrimSpace(errOut))
	if st := f.mustCAStatus(t); st.Phase != old.Phase || st.RequestPending {
		t.Fatalf("got phase %s, request pending %v after a refused import, want nothing started", st.Phase, st.RequestPending)
	}

	since := time.Now()
	out, errOut, code, err := f.controllerExec(append(importArgs, "--chain", "/state/in/chain.pem")...)
	if err != nil || code != 0 {
		t.Fatalf("controller ca import: got exit %d, err %v\nstdout: %s\nstderr: %s", code, err, out, errOut)
	}
	if strings.Contains(out+errOut, "PRIVATE KEY") {
		t.Fatal("got the key in the import's output")
	}
	t.Logf("controller ca import: %s", strings.TrimSpace(out))
	done := f.waitRolloverDone(t, old.ActiveCA.Fingerprint)
	took := time.Since(since)
	if done.ActiveCA.Fingerprint != rtFingerprint(inter.Cert) || !done.ActiveCA.Imported || done.Import == nil || done.Import.State != "adopted" {
		t.Fatalf("got active CA %+v, import %+v, want the imported intermediate, adopted", done.ActiveCA, done.Import)
	}
	f.waitSettled(t, svcs)
	t.Logf("MEASURE: ca-import: import -> idle on the imported intermediate = %s; -> every process on it = %s",
		took.Round(100*time.Millisecond), time.Since(since).Round(100*time.Millisecond))

	for name, c := range svcs {
		cas, err := rtReadCerts(f.certs + "/" + name + "/ca.crt")
		if err != nil || len(cas) != 1 || !cas[0].Equal(root.Cert) {
			t.Errorf("%s: got ca.crt of %d certificates (%v), want the operator's root alone", name, len(cas), err)
		}
		for _, file := range []string{"tls.crt", "client.crt"} {
			chain, err := rtReadCerts(f.certs + "/" + name + "/" + file)
			if err != nil || len(chain) != 2 || !chain[1].Equal(inter.Cert) || chain[0].CheckSignatureFrom(inter.Cert) != nil {
				t.Errorf("%s: got %s of %d certificates (%v), want a leaf of the intermediate followed by it", name, file, len(chain), err)
			}
		}
		if ok, why := f.checkMTLS(t, c); !ok {
			t.Errorf("%s: got %s, want mtls verified to the root through the served chain", name, why)
		}
	}
	out, errOut, code, err = f.controllerExec("ca", "export")
	if err != nil || code != 0 || out != string(root.CertPEM) {
		t.Errorf("controller ca export: got exit %d, err %v, stdout %q (%s), want the operator's root", code, err, out, errOut)
	}
}
