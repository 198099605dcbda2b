package probe

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// newChainPKI is newPKI under an operator's intermediate: the authority
// starts with it (staged as `controller ca import` does), leaves carry the
// intermediate, and the prober trusts only the root.
func newChainPKI(t testing.TB) *pki {
	t.Helper()
	root := testpki.NewCA(t, testpki.WithCommonName("probe corp root"), testpki.WithMaxPathLen(1))
	inter := root.NewIntermediate(t, testpki.WithCommonName("probe corp issuing CA"))
	ca, err := certs.CheckImport(certs.ImportInput{CertPEM: inter.CertPEM, KeyPEM: inter.KeyPEM, ChainPEM: root.CertPEM},
		certs.ImportOptions{LeafLifetime: time.Hour})
	if err != nil {
		t.Fatalf("importing the intermediate: %v", err)
	}
	dir := t.TempDir()
	if err := certs.StageImport(dir, ca); err != nil {
		t.Fatal(err)
	}
	auth, _, err := certs.OpenAuthority(dir, certs.AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatalf("opening authority: %v", err)
	}
	p := &pki{auth: auth, roots: auth.TrustPool()}
	b := p.issue(t, "crank-mtls-controller", []string{"crank-mtls-controller"}, certs.IssueOptions{Lifetime: time.Hour})
	if p.client, err = tls.X509KeyPair(b.ClientCert, b.ClientKey); err != nil {
		t.Fatalf("client key pair: %v", err)
	}
	return p
}

// leafOnly is c without the chain it would serve after the leaf.
func leafOnly(c tls.Certificate) tls.Certificate {
	c.Certificate = c.Certificate[:1]
	return c
}

func TestProbeVerifiesThroughTheServedChain(t *testing.T) {
	t.Parallel()
	p := newChainPKI(t)
	if n := len(p.client.Certificate); n != 2 {
		t.Fatalf("got a prober certificate of %d certificates, want the leaf and the intermediate", n)
	}
	if anchors, err := certs.ParseCertificatesPEM(p.auth.TrustBundle()); err != nil || len(anchors) != 1 || anchors[0].Subject.CommonName != "probe corp root" {
		t.Fatalf("got trust bundle %v (%v), want the root alone", anchors, err)
	}
	issued := func(t *testing.T) (tls.Certificate, *x509.Certificate) {
		return p.serverCert(t, []string{testService, "localhost"}, certs.IssueOptions{Lifetime: time.Hour})
	}
	tests := map[string]struct {
		target func(t *testing.T) Target
		// wantLevel and wantReasons: the Result's Level and Reasons().
		wantLevel   Level
		wantReasons []Reason
		// wantMessage, if set, must appear in a finding's message.
		wantMessage string
	}{
		"should report mtls for a server serving its leaf and the intermediate, with client certs verified to the root": {
			target: func(t *testing.T) Target {
				c, leaf := issued(t)
				port, _ := p.tlsServer(t, withCert(c))
				return newTarget(withHTTPS(port), withExpected(Fingerprint(leaf)))
			},
			wantLevel: MTLS,
		},
		"should report untrusted-server-cert for a server that serves its leaf without the intermediate": {
			target: func(t *testing.T) Target {
				c, _ := issued(t)
				port, _ := p.tlsServer(t, withCert(leafOnly(c)), withClientAuth(tls.NoClientCert))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{UntrustedServerCert}, wantMessage: "does not chain to our CA",
		},
		"should report client-cert-rejected by a server that trusts only the intermediate's sibling root": {
			target: func(t *testing.T) Target {
				c, _ := issued(t)
				port, _ := p.tlsServer(t, withCert(c), withClientCAs(newChainPKI(t).roots))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{ClientCertRejected},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			res := p.prober().Probe(t.Context(), tc.target(t))
			if res.Level != tc.wantLevel || !slices.Equal(res.Reasons(), tc.wantReasons) {
				t.Fatalf("got %s %s, want %s %s (%+v)", res.Level, reasonsString(res.Reasons()), tc.wantLevel, reasonsString(tc.wantReasons), res.Findings)
			}
			if tc.wantMessage != "" && !slices.ContainsFunc(res.Findings, func(f Finding) bool { return strings.Contains(f.Message, tc.wantMessage) }) {
				t.Errorf("got findings %+v, want one saying %q", res.Findings, tc.wantMessage)
			}
		})
	}
}
