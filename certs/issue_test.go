package certs

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// verifyLeaf verifies certPEM against the trust bundle caPEM for usage at
// t0 and, for server certificates, for host name. It returns the leaf.
func verifyLeaf(t testing.TB, certPEM, caPEM []byte, usage x509.ExtKeyUsage, name string) *x509.Certificate {
	t.Helper()
	leaf := mustParseCert(t, certPEM)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatalf("trust bundle holds no certificates")
	}
	opts := x509.VerifyOptions{Roots: pool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{usage}}
	if usage == x509.ExtKeyUsageServerAuth {
		opts.DNSName = name
	}
	if _, err := leaf.Verify(opts); err != nil {
		t.Fatalf("verifying %q: %v", leaf.Subject.CommonName, err)
	}
	return leaf
}

var webIdentity = Identity{Service: "web", DNSNames: []string{"web", "web.crank_default", "localhost", "Web", "127.0.0.1"}}

func TestIssueBundleDefaults(t *testing.T) {
	t.Parallel()
	ca := fixtureCA(t)
	a := memAuthority(ca, nil)
	b, info, err := a.IssueBundle(webIdentity, IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	server := verifyLeaf(t, b.ServerCert, b.CA, x509.ExtKeyUsageServerAuth, "web.crank_default")
	verifyLeaf(t, b.ServerCert, b.CA, x509.ExtKeyUsageServerAuth, "127.0.0.1")
	client := verifyLeaf(t, b.ClientCert, b.CA, x509.ExtKeyUsageClientAuth, "")

	if got, want := server.DNSNames, []string{"web", "web.crank_default", "localhost"}; !slices.Equal(got, want) {
		t.Errorf("got server DNS SANs %q, want %q (deduplicated case-insensitively, IPs split out)", got, want)
	}
	if got := server.IPAddresses; len(got) != 1 || !got[0].Equal(net.ParseIP("127.0.0.1")) {
		t.Errorf("got server IP SANs %v, want [127.0.0.1]", got)
	}
	if server.Subject.CommonName != "web" || client.Subject.CommonName != "web" {
		t.Errorf("got CNs %q and %q, want web and web", server.Subject.CommonName, client.Subject.CommonName)
	}
	if len(client.URIs) != 1 || client.URIs[0].String() != "spiffe://crank.local/service/web" {
		t.Errorf("got client URIs %v, want [spiffe://crank.local/service/web]", client.URIs)
	}
	if len(client.DNSNames) != 0 || len(server.URIs) != 0 {
		t.Errorf("got client DNS SANs %v and server URIs %v, want none", client.DNSNames, server.URIs)
	}
	for _, leaf := range []*x509.Certificate{server, client} {
		if !leaf.NotBefore.Equal(t0.Add(-5*time.Minute)) || !leaf.NotAfter.Equal(t0.Add(90*24*time.Hour)) {
			t.Errorf("%s: got validity %v..%v, want %v..%v", leaf.Subject, leaf.NotBefore, leaf.NotAfter, t0.Add(-5*time.Minute), t0.Add(90*24*time.Hour))
		}
		if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
			t.Errorf("got %T, want an ECDSA P-256 key", leaf.PublicKey)
		}
		if leaf.KeyUsage != x509.KeyUsageDigitalSignature || leaf.IsCA {
			t.Errorf("got key usage %b IsCA %v, want digitalSignature only and no CA", leaf.KeyUsage, leaf.IsCA)
		}
		if len(leaf.SubjectKeyId) != 20 || !slices.Equal(leaf.AuthorityKeyId, ca.Cert.SubjectKeyId) {
			t.Errorf("got SKID %x AKID %x, want a 20-byte SKID and AKID %x", leaf.SubjectKeyId, leaf.AuthorityKeyId, ca.Cert.SubjectKeyId)
		}
		if leaf.SerialNumber.BitLen() > 128 || leaf.SerialNumber.BitLen() < 64 {
			t.Errorf("got a %d-bit serial, want a random one of up to 128 bits", leaf.SerialNumber.BitLen())
		}
	}
	if server.SerialNumber.Cmp(client.SerialNumber) == 0 {
		t.Errorf("got the same serial twice")
	}
	for name, key := range map[string][]byte{FileServerKey: b.ServerKey, FileClientKey: b.ClientKey} {
		if block, _ := pem.Decode(key); block == nil || block.Type != "PRIVATE KEY" {
			t.Errorf("%s: got %q, want a PKCS#8 PRIVATE KEY block", name, key)
		}
	}
	if string(b.CA) != string(a.TrustBundle()) {
		t.Errorf("got ca.crt %q, want the TrustBundle", b.CA)
	}
	if info.ServerSerial != SerialString(server.SerialNumber) || info.ClientSerial != SerialString(client.SerialNumber) {
		t.Errorf("got serials %s/%s, want %s/%s", info.ServerSerial, info.ClientSerial, SerialString(server.SerialNumber), SerialString(client.SerialNumber))
	}
	if info.Clamped || !info.NotAfter.Equal(server.NotAfter) || !info.NotBefore.Equal(server.NotBefore) {
		t.Errorf("got info %+v, want the leaves' validity and no clamp", info)
	}
	if f := Validate(b, Expectation{Identity: webIdentity, Authority: a, Now: t0}); len(f) != 0 {
		t.Errorf("a fresh bundle got findings %v, want none", f)
	}
}

func TestIssueBundleKeyAlgorithms(t *testing.T) {
	t.Parallel()
	a := memAuthority(fixtureCA(t), nil)
	tests := map[string]struct {
		alg KeyAlgorithm
		// wantKeyUsage is the leaves' key usage; wantBits the RSA size.
		wantKeyUsage x509.KeyUsage
		wantBits     int
	}{
		"should issue ECDSA P-256 leaves":          {alg: ECDSAP256, wantKeyUsage: x509.KeyUsageDigitalSignature},
		"should issue RSA-2048 leaves":             {alg: RSA2048, wantKeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, wantBits: 2048},
		"should issue RSA-3072 leaves":             {alg: RSA3072, wantKeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment, wantBits: 3072},
		"should issue Ed25519 leaves":              {alg: Ed25519, wantKeyUsage: x509.KeyUsageDigitalSignature},
		"should default to ECDSA P-256 when unset": {alg: "", wantKeyUsage: x509.KeyUsageDigitalSignature},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, _, err := a.IssueBundle(webIdentity, IssueOptions{KeyAlgorithm: tc.alg, Now: t0})
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range [][]byte{b.ServerCert, b.ClientCert} {
				leaf := mustParseCert(t, p)
				if leaf.KeyUsage != tc.wantKeyUsage {
					t.Errorf("got key usage %b, want %b", leaf.KeyUsage, tc.wantKeyUsage)
				}
				switch pub := leaf.PublicKey.(type) {
				case *rsa.PublicKey:
					if pub.N.BitLen() != tc.wantBits {
						t.Errorf("got RSA-%d, want RSA-%d", pub.N.BitLen(), tc.wantBits)
					}
				case ed25519.PublicKey:
					if tc.alg != Ed25519 {
						t.Errorf("got Ed25519, want %s", tc.alg)
					}
				case *ecdsa.PublicKey:
					if tc.alg != ECDSAP256 && tc.alg != "" {
						t.Errorf("got ECDSA, want %s", tc.alg)
					}
				}
			}
			if f := Validate(b, Expectation{Identity: webIdentity, Authority: a, Now: t0}); len(f) != 0 {
				t.Errorf("got findings %v, want none", f)
			}
		})
	}
}

func TestIssueBundleClampsToTheCA(t *testing.T) {
	t.Parallel()
	ca := fixtureCA(t, withCAValidity(t0.Add(-time.Hour), t0.Add(30*24*time.Hour)))
	b, info, err := memAuthority(ca, nil).IssueBundle(webIdentity, IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Clamped || !info.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("got Clamped=%v NotAfter=%v, want true and the CA's %v", info.Clamped, info.NotAfter, ca.Cert.NotAfter)
	}
	if leaf := mustParseCert(t, b.ClientCert); !leaf.NotAfter.Equal(ca.Cert.NotAfter) {
		t.Errorf("got leaf NotAfter %v, want %v", leaf.NotAfter, ca.Cert.NotAfter)
	}
	// The backdate must not reach before the CA itself is valid.
	if leaf := mustParseCert(t, b.ServerCert); !leaf.NotBefore.Equal(t0.Add(-5 * time.Minute)) {
		t.Errorf("got NotBefore %v, want %v", leaf.NotBefore, t0.Add(-5*time.Minute))
	}
	young := fixtureCA(t, withCAValidity(t0.Add(-time.Minute), t0.Add(time.Hour)))
	_, info, err = memAuthority(young, nil).IssueBundle(webIdentity, IssueOptions{Now: t0})
	if err != nil || !info.NotBefore.Equal(young.Cert.NotBefore) {
		t.Errorf("got NotBefore %v err %v, want the CA's NotBefore %v", info.NotBefore, err, young.Cert.NotBefore)
	}
}

func TestIssueBundleRejectsBadInput(t *testing.T) {
	t.Parallel()
	a := memAuthority(fixtureCA(t), nil)
	tests := map[string]struct {
		id   Identity
		opts IssueOptions
		// wantIs is the sentinel the error must wrap; nil means any error.
		wantIs error
	}{
		"should reject an empty service":             {id: Identity{DNSNames: []string{"a"}}, wantIs: ErrInvalidIdentity},
		"should reject a service with a slash":       {id: Identity{Service: "a/b", DNSNames: []string{"a"}}, wantIs: ErrInvalidIdentity},
		"should reject a service of ..":              {id: Identity{Service: "..", DNSNames: []string{"a"}}, wantIs: ErrInvalidIdentity},
		"should reject an upper-case trust domain":   {id: Identity{Service: "a", DNSNames: []string{"a"}, TrustDomain: "Crank"}, wantIs: ErrInvalidIdentity},
		"should reject an identity without names":    {id: Identity{Service: "a"}, wantIs: ErrInvalidIdentity},
		"should reject an empty DNS name":            {id: Identity{Service: "a", DNSNames: []string{""}}, wantIs: ErrInvalidIdentity},
		"should reject an unknown key algorithm":     {id: webIdentity, opts: IssueOptions{KeyAlgorithm: "rsa-512"}, wantIs: ErrUnknownKeyAlgorithm},
		"should reject a negative lifetime":          {id: webIdentity, opts: IssueOptions{Lifetime: -time.Hour}},
		"should reject a non-ASCII DNS name in SANs": {id: Identity{Service: "a", DNSNames: []string{"café"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.opts.Now.IsZero() {
				tc.opts.Now = t0
			}
			b, _, err := a.IssueBundle(tc.id, tc.opts)
			if err == nil || b != nil || (tc.wantIs != nil && !errors.Is(err, tc.wantIs)) {
				t.Errorf("got bundle %v, error %v; want no bundle and an error wrapping %v", b != nil, err, tc.wantIs)
			}
		})
	}
}

func TestIdentitySPIFFEID(t *testing.T) {
	t.Parallel()
	if got, want := (Identity{Service: "db", TrustDomain: "prod.example"}).SPIFFEID().String(), "spiffe://prod.example/service/db"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestIssueBundleFrom(t *testing.T) {
	t.Parallel()
	old, next, stranger := fixtureCA(t, withCACommonName("old")), fixtureCA(t, withCACommonName("next")), fixtureCA(t, withCACommonName("stranger"))
	a := memAuthority(old, next)
	tests := map[string]struct {
		ca       *CA
		wantErr  bool   // whether issuance must be refused
		wantFrom string // CN of the CA the client leaf must be signed by
	}{
		"should sign with the successor during an overlap":               {ca: next, wantFrom: "next"},
		"should sign with the active CA like IssueBundle":                {ca: old, wantFrom: "old"},
		"should refuse a CA that is neither the active CA nor successor": {ca: stranger, wantErr: true},
		"should refuse a nil CA":                                         {ca: nil, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, _, err := a.IssueBundleFrom(tc.ca, webIdentity, IssueOptions{Now: t0})
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error=%v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			client := verifyLeaf(t, b.ClientCert, b.CA, x509.ExtKeyUsageClientAuth, "")
			if got := client.Issuer.CommonName; got != tc.wantFrom {
				t.Errorf("got client leaf issued by %q, want %q", got, tc.wantFrom)
			}
			if got := strings.Count(string(b.CA), "BEGIN CERTIFICATE"); got != 2 {
				t.Errorf("got %d CAs in the trust bundle, want 2 (old and successor)", got)
			}
		})
	}
}

// TestInteropOverlapBeforePromote is the overlap as the rotator runs it:
// the successor exists but does not issue yet. The prober's client
// certificate comes from the successor, so a server still holding the
// pre-rollover trust bundle refuses it (the probe finds
// client-cert-rejected) and one that reloaded the overlap bundle accepts
// it; old-CA and new-CA leaves reach each other in both directions.
func TestInteropOverlapBeforePromote(t *testing.T) {
	t.Parallel()
	a, _, err := OpenAuthority(t.TempDir(), AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Service: "web", DNSNames: []string{"web", "localhost"}}
	oldBundle, _, err := a.IssueBundle(id, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	preRollover := oldBundle.CA
	next, err := a.CreateSuccessor(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	probeCreds, _, err := a.IssueBundleFrom(next, Identity{Service: "crank-mtls-controller", DNSNames: []string{"crank-mtls-controller"}}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newBundle, _, err := a.IssueBundleFrom(next, id, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	overlap := a.TrustBundle()
	tests := map[string]struct {
		server, client           *BundleFiles
		serverTrust, clientTrust []byte
		wantOK                   bool // whether the mTLS request must succeed
	}{
		"should refuse the successor's client cert at a server that has not reloaded": {
			server: oldBundle, client: probeCreds, serverTrust: preRollover, clientTrust: overlap},
		"should accept the successor's client cert at a server that reloaded the overlap bundle": {
			server: oldBundle, client: probeCreds, serverTrust: overlap, clientTrust: overlap, wantOK: true},
		"should let an old-CA client reach a new-CA server when both trust the overlap bundle": {
			server: newBundle, client: oldBundle, serverTrust: overlap, clientTrust: overlap, wantOK: true},
		"should let a new-CA client reach an old-CA server when both trust the overlap bundle": {
			server: oldBundle, client: newBundle, serverTrust: overlap, clientTrust: overlap, wantOK: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startMTLSServer(t, tc.server, tc.serverTrust)
			_, err := mtlsGet(t, srv, tc.client, tc.clientTrust)
			if (err == nil) != tc.wantOK {
				t.Errorf("got error %v, want success=%v", err, tc.wantOK)
			}
		})
	}
}
