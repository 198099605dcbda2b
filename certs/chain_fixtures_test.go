package certs

import (
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// corpPKI is an operator's PKI around t0: a root that allows one
// intermediate below it, and an issuing intermediate under it, both valid
// for years, as a corporate CA hands them out.
type corpPKI struct {
	root, inter *testpki.CA
}

// validAroundT0 is the validity of the fixture PKI's certificates.
func validAroundT0() testpki.Option {
	return testpki.WithValidity(t0.Add(-24*time.Hour), t0.Add(3*365*24*time.Hour))
}

func newCorpPKI(t testing.TB, name string) corpPKI {
	t.Helper()
	root := testpki.NewCA(t, testpki.WithCommonName(name+" root"), testpki.WithMaxPathLen(1), validAroundT0())
	inter := root.NewIntermediate(t, testpki.WithCommonName(name+" issuing CA"), validAroundT0())
	return corpPKI{root: root, inter: inter}
}

// importedCA is the intermediate as CheckImport returns it.
func (p corpPKI) importedCA(t testing.TB) *CA {
	t.Helper()
	ca, err := CheckImport(ImportInput{CertPEM: p.inter.CertPEM, KeyPEM: p.inter.KeyPEM, ChainPEM: p.inter.ParentsPEM()}, ImportOptions{Now: t0})
	if err != nil {
		t.Fatalf("importing the fixture intermediate: %v", err)
	}
	return ca
}
