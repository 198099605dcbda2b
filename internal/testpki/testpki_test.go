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
