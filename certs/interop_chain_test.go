package certs

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// These tests prove that bundles issued from an imported intermediate work
// with real TLS stacks when peers trust only the root: the leaf files carry
// the intermediate, and ca.crt holds the root alone. Like interop_test.go,
// they run against the real clock.

// liveImportedCA is an operator's intermediate under a root that allows
// it, imported through CheckImport, valid around the real current time.
func liveImportedCA(t *testing.T) (*CA, *testpki.CA) {
	t.Helper()
	root := testpki.NewCA(t, testpki.WithCommonName("interop corp root"), testpki.WithMaxPathLen(1))
	inter := root.NewIntermediate(t, testpki.WithCommonName("interop corp issuing CA"))
	ca, err := CheckImport(ImportInput{CertPEM: inter.CertPEM, KeyPEM: inter.KeyPEM, ChainPEM: root.CertPEM},
		ImportOptions{LeafLifetime: time.Hour})
	if err != nil {
		t.Fatalf("importing the intermediate: %v", err)
	}
	return ca, root
}

// liveChainBundle issues a bundle for "web" from an imported intermediate.
func liveChainBundle(t *testing.T) *BundleFiles {
	t.Helper()
	ca, _ := liveImportedCA(t)
	b, _, err := memAuthority(ca, nil).IssueBundle(Identity{Service: "web", DNSNames: []string{"web", "localhost", "127.0.0.1"}},
		IssueOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// splitLeafFile writes the leaf of a certificate file and the certificates
// after it into dir, as leaf.pem and chain.pem, for `openssl verify`.
func splitLeafFile(t *testing.T, dir, prefix string, certPEM []byte) (leaf, chain string) {
	t.Helper()
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) < 2 {
		t.Fatalf("got %d certificates in the leaf file, want the leaf and its chain", len(certs))
	}
	leaf, chain = filepath.Join(dir, prefix+"-leaf.pem"), filepath.Join(dir, prefix+"-chain.pem")
	if err := os.WriteFile(leaf, encodeCertsPEM(certs[:1]), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(chain, encodeCertsPEM(certs[1:]), 0o600); err != nil {
		t.Fatal(err)
	}
	return leaf, chain
}

func TestInteropChainOpenSSLVerify(t *testing.T) {
	t.Parallel()
	openssl := requireTool(t, "openssl")
	b := liveChainBundle(t)
	dir := writeBundleDir(t, b)
	if n := strings.Count(string(b.CA), "BEGIN CERTIFICATE"); n != 1 {
		t.Fatalf("got %d certificates in ca.crt, want the root alone", n)
	}
	ca := filepath.Join(dir, FileCA)
	for _, tc := range []struct {
		purpose, file string
		pem           []byte
	}{{"sslserver", FileServerCert, b.ServerCert}, {"sslclient", FileClientCert, b.ClientCert}} {
		leaf, chain := splitLeafFile(t, dir, tc.file, tc.pem)
		out, err := runTool(t, openssl, "verify", "-untrusted", chain, "-CAfile", ca, "-purpose", tc.purpose, leaf)
		if err != nil || !strings.Contains(out, ": OK") {
			t.Errorf("openssl verify -untrusted %s -CAfile ca.crt -purpose %s %s: got %v\n%s, want OK", tc.file+"'s chain", tc.purpose, tc.file, err, out)
		}
		t.Logf("openssl verify -untrusted chain.pem -CAfile ca.crt -purpose %s leaf.pem (%s): %s", tc.purpose, tc.file, strings.TrimSpace(out))
		// Without the intermediate OpenSSL cannot reach the root: the chain
		// in the leaf file is what makes it verify.
		out, err = runTool(t, openssl, "verify", "-CAfile", ca, "-purpose", tc.purpose, leaf)
		if err == nil {
			t.Errorf("openssl verify without -untrusted (%s): got success, want it to miss the intermediate\n%s", tc.file, out)
		}
	}
}

func TestInteropChainGoTLS(t *testing.T) {
	t.Parallel()
	b := liveChainBundle(t)
	srv := startMTLSServer(t, b, b.CA)
	got, err := mtlsGet(t, srv, b, b.CA)
	if want := "spiffe://crank.local/service/web"; err != nil || got != want {
		t.Errorf("with the client chain, trusting the root only: got %q, %v; want %q, nil", got, err, want)
	}
}

func TestInteropChainCurl(t *testing.T) {
	t.Parallel()
	curl := requireTool(t, "curl")
	b := liveChainBundle(t)
	srv := startMTLSServer(t, b, b.CA)
	dir := writeBundleDir(t, b)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	port := u.Port()
	target := "https://localhost:" + port + "/"
	base := []string{"--silent", "--show-error", "--fail", "--max-time", "10", "--noproxy", "*",
		"--resolve", "localhost:" + port + ":127.0.0.1", "--cacert", filepath.Join(dir, FileCA)}
	out, err := runTool(t, curl, append(base, "--cert", filepath.Join(dir, FileClientCert), "--key", filepath.Join(dir, FileClientKey), target)...)
	if want := "spiffe://crank.local/service/web"; err != nil || out != want {
		t.Errorf("curl --cacert ca.crt --cert client.crt --key client.key: got %q, %v; want %q", out, err, want)
	}
	t.Logf("curl --cacert ca.crt (root only) --cert client.crt (leaf + intermediate) --key client.key %s: %s", target, out)
	if out, err := runTool(t, curl, append(base, target)...); err == nil {
		t.Errorf("curl without a client cert: got success %q, want a refused handshake", out)
	}
}

// TestInteropRolloverToAnImportedIntermediate is the overlap of
// TestInteropRolloverOverlap from the controller's own CA to an imported
// intermediate: while ca.crt holds our CA and the operator's root, peers
// with leaves of either accept each other; after the retire only the new
// ones are accepted.
func TestInteropRolloverToAnImportedIntermediate(t *testing.T) {
	t.Parallel()
	a, _, err := OpenAuthority(t.TempDir(), AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Service: "web", DNSNames: []string{"web", "localhost"}}
	oldBundle, _, err := a.IssueBundle(id, IssueOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	imported, root := liveImportedCA(t)
	if err := a.AdoptSuccessor(imported); err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	newBundle, _, err := a.IssueBundle(id, IssueOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	overlap := a.TrustBundle()
	if n := strings.Count(string(overlap), "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("got %d anchors in the overlap trust bundle, want our CA and the operator's root", n)
	}
	tests := map[string]struct {
		server, client *BundleFiles
		trust          []byte
		wantOK         bool // whether the mTLS request must succeed
	}{
		"should let an old-CA client reach a server of the intermediate during the overlap": {server: newBundle, client: oldBundle, trust: overlap, wantOK: true},
		"should let a client of the intermediate reach an old-CA server during the overlap": {server: oldBundle, client: newBundle, trust: overlap, wantOK: true},
		"should refuse an old-CA client once only the root is trusted":                      {server: newBundle, client: oldBundle, trust: root.CertPEM},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startMTLSServer(t, tc.server, tc.trust)
			_, err := mtlsGet(t, srv, tc.client, tc.trust)
			if (err == nil) != tc.wantOK {
				t.Errorf("got error %v, want success=%v", err, tc.wantOK)
			}
		})
	}
}
