package testpki

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

func TestIssuedLeafVerifiesAgainstItsCA(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	leaf := ca.Issue(t, WithCommonName("web"), WithDNSNames("web", "localhost"))
	_, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Errorf("got %v verifying the leaf, want it to chain to its CA", err)
	}
	if _, err := tls.X509KeyPair(leaf.CertPEM, leaf.KeyPEM); err != nil {
		t.Errorf("got %v loading the leaf's PEM pair, want a usable pair", err)
	}
	if _, err := tls.X509KeyPair(ca.CertPEM, ca.KeyPEM); err != nil {
		t.Errorf("got %v loading the CA's PEM pair, want a usable pair", err)
	}
}

func TestOptions(t *testing.T) {
	t.Parallel()
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nb, na := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2020, 1, 2, 0, 0, 0, 0, time.UTC)
	ca := NewCA(t, WithCommonName("old CA"), WithValidity(nb, na), WithKey(edKey), NotCA())
	if got := ca.Cert.Subject.CommonName; got != "old CA" {
		t.Errorf("got common name %q, want %q", got, "old CA")
	}
	if !ca.Cert.NotBefore.Equal(nb) || !ca.Cert.NotAfter.Equal(na) {
		t.Errorf("got validity %v..%v, want %v..%v", ca.Cert.NotBefore, ca.Cert.NotAfter, nb, na)
	}
	if ca.Cert.IsCA {
		t.Error("got IsCA true, want false with NotCA")
	}
	if got := ca.Cert.PublicKeyAlgorithm; got != x509.Ed25519 {
		t.Errorf("got key algorithm %v, want Ed25519", got)
	}
	client := NewCA(t).Issue(t, WithExtKeyUsage(x509.ExtKeyUsageClientAuth))
	if got := client.Cert.ExtKeyUsage; len(got) != 1 || got[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("got extended key usage %v, want [ClientAuth]", got)
	}
	if got := client.Cert.DNSNames; len(got) != 1 || got[0] != "leaf" {
		t.Errorf("got DNS names %v, want the common name [leaf]", got)
	}
}

func TestIntermediateChainsToItsRoot(t *testing.T) {
	t.Parallel()
	root := NewCA(t, WithCommonName("corp root"), WithMaxPathLen(1))
	inter := root.NewIntermediate(t, WithCommonName("corp issuing"))
	leaf := inter.Issue(t, WithCommonName("web"))
	if got := len(inter.Parents); got != 1 || !inter.Parents[0].Equal(root.Cert) || !inter.Root().Equal(root.Cert) {
		t.Fatalf("got %d parents, want the root alone", got)
	}
	if !inter.Cert.MaxPathLenZero || inter.Cert.MaxPathLen != 0 {
		t.Errorf("got intermediate path length %d (zero %v), want 0", inter.Cert.MaxPathLen, inter.Cert.MaxPathLenZero)
	}
	pool := x509.NewCertPool()
	pool.AddCert(inter.Cert)
	opts := x509.VerifyOptions{Roots: inter.RootPool(), Intermediates: pool, DNSName: "web"}
	if _, err := leaf.Cert.Verify(opts); err != nil {
		t.Errorf("got %v verifying a leaf through its intermediate, want it to verify", err)
	}
	strict := NewCA(t, WithCommonName("strict root"))
	under := strict.NewIntermediate(t)
	pool = x509.NewCertPool()
	pool.AddCert(under.Cert)
	_, err := under.Issue(t, WithCommonName("web")).Cert.Verify(x509.VerifyOptions{Roots: strict.RootPool(), Intermediates: pool, DNSName: "web"})
	if err == nil {
		t.Error("got a leaf verifying under a root of path length 0 with an intermediate between, want it refused")
	}
	if unlimited := NewCA(t, WithMaxPathLen(-1)).Cert; unlimited.MaxPathLen != -1 {
		t.Errorf("got path length %d with WithMaxPathLen(-1), want -1 (none)", unlimited.MaxPathLen)
	}
}
