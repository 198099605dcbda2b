package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// t0 is the fixed "now" of the crypto tests; nothing reads the real clock.
var t0 = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// caFixture describes an in-memory CA for tests; caOption funcs adjust it.
type caFixture struct {
	cn        string
	alg       KeyAlgorithm
	notBefore time.Time
	notAfter  time.Time
	isCA      bool
	keyUsage  x509.KeyUsage
}

type caOption func(*caFixture)

func withCACommonName(cn string) caOption     { return func(f *caFixture) { f.cn = cn } }
func withCAAlgorithm(a KeyAlgorithm) caOption { return func(f *caFixture) { f.alg = a } }
func withCAValidity(nb, na time.Time) caOption {
	return func(f *caFixture) { f.notBefore, f.notAfter = nb, na }
}
func withCANotACA() caOption                  { return func(f *caFixture) { f.isCA = false } }
func withCAKeyUsage(u x509.KeyUsage) caOption { return func(f *caFixture) { f.keyUsage = u } }

// fixtureCA builds a self-signed CA in memory: by default ECDSA P-256,
// valid from t0-24h to t0+5y, like one an operator would bring.
func fixtureCA(t testing.TB, opts ...caOption) *CA {
	t.Helper()
	f := caFixture{
		cn: "fixture CA", alg: ECDSAP256, isCA: true,
		notBefore: t0.Add(-24 * time.Hour), notAfter: t0.Add(5 * 365 * 24 * time.Hour),
		keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	for _, o := range opts {
		o(&f)
	}
	key, err := generateKey(f.alg)
	if err != nil {
		t.Fatalf("generating %s CA key: %v", f.alg, err)
	}
	pki := []testpki.Option{testpki.WithCommonName(f.cn), testpki.WithKey(key),
		testpki.WithValidity(f.notBefore, f.notAfter), testpki.WithKeyUsage(f.keyUsage)}
	if !f.isCA {
		pki = append(pki, testpki.NotCA())
	}
	ca := testpki.NewCA(t, pki...)
	return &CA{Cert: ca.Cert, Key: ca.Key}
}

// keyPEMAs encodes key in one of the encodings operators bring.
func keyPEMAs(t testing.TB, key crypto.Signer, label string) []byte {
	t.Helper()
	var der []byte
	var err error
	switch label {
	case pemPKCS8:
		der, err = x509.MarshalPKCS8PrivateKey(key)
	case pemPKCS1:
		der = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	case pemSEC1:
		der, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	default:
		t.Fatalf("unknown key label %q", label)
	}
	if err != nil {
		t.Fatalf("marshalling %s: %v", label, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: label, Bytes: der})
}

func mustKeyPEM(t testing.TB, ca *CA) []byte {
	t.Helper()
	p, err := ca.KeyPEM()
	if err != nil {
		t.Fatalf("encoding CA key: %v", err)
	}
	return p
}

func TestNewCA(t *testing.T) {
	t.Parallel()
	for _, alg := range []KeyAlgorithm{ECDSAP256, Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			ca, err := NewCA("test CA", alg, 24*time.Hour, t0)
			if err != nil {
				t.Fatalf("NewCA: %v", err)
			}
			c := ca.Cert
			if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
				t.Errorf("got IsCA=%v BasicConstraintsValid=%v MaxPathLen=%d MaxPathLenZero=%v, want a CA limited to path length 0",
					c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage&x509.KeyUsageCertSign == 0 {
				t.Errorf("got key usage %b, want certSign", c.KeyUsage)
			}
			if got, want := c.NotBefore, t0.Add(-5*time.Minute); !got.Equal(want) {
				t.Errorf("got NotBefore %v, want %v", got, want)
			}
			if got, want := c.NotAfter, t0.Add(24*time.Hour); !got.Equal(want) {
				t.Errorf("got NotAfter %v, want %v", got, want)
			}
			if len(c.SubjectKeyId) != 20 {
				t.Errorf("got SubjectKeyId of %d bytes, want 20", len(c.SubjectKeyId))
			}
			if c.Subject.CommonName != "test CA" {
				t.Errorf("got CN %q, want %q", c.Subject.CommonName, "test CA")
			}
			if err := c.CheckSignatureFrom(c); err != nil {
				t.Errorf("self-signature: %v", err)
			}
			loaded, err := LoadCA(ca.CertPEM(), mustKeyPEM(t, ca))
			if err != nil {
				t.Fatalf("LoadCA of our own PEM: %v", err)
			}
			if !loaded.Cert.Equal(c) {
				t.Errorf("LoadCA returned another certificate")
			}
		})
	}
}

func TestNewCARejectsBadInput(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		cn       string
		alg      KeyAlgorithm
		lifetime time.Duration
	}{
		"should reject an empty common name":   {cn: " ", alg: ECDSAP256, lifetime: time.Hour},
		"should reject a zero lifetime":        {cn: "x", alg: ECDSAP256},
		"should reject an unknown algorithm":   {cn: "x", alg: "dsa-1024", lifetime: time.Hour},
		"should reject a negative lifetime":    {cn: "x", alg: ECDSAP256, lifetime: -time.Hour},
		"should reject an empty algorithm too": {cn: "x", lifetime: time.Hour},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if ca, err := NewCA(tc.cn, tc.alg, tc.lifetime, t0); err == nil {
				t.Errorf("got CA %q, want an error", ca.Cert.Subject.CommonName)
			}
		})
	}
}

func TestLoadCA(t *testing.T) {
	t.Parallel()
	good := fixtureCA(t)
	other := fixtureCA(t)
	leaf := fixtureCA(t, withCANotACA(), withCAKeyUsage(x509.KeyUsageDigitalSignature))
	noCertSign := fixtureCA(t, withCAKeyUsage(x509.KeyUsageDigitalSignature))
	tests := map[string]struct {
		cert, key []byte
		// wantErr is a substring of the error; "" means LoadCA must succeed.
		wantErr string
	}{
		"should load a matching pair":                        {cert: good.CertPEM(), key: mustKeyPEM(t, good)},
		"should load a SEC1 key":                             {cert: good.CertPEM(), key: keyPEMAs(t, good.Key, pemSEC1)},
		"should reject a key of another CA":                  {cert: good.CertPEM(), key: mustKeyPEM(t, other), wantErr: "does not match"},
		"should reject a certificate that is not a CA":       {cert: leaf.CertPEM(), key: mustKeyPEM(t, leaf), wantErr: "not a CA"},
		"should reject a CA whose key usage lacks certSign":  {cert: noCertSign.CertPEM(), key: mustKeyPEM(t, noCertSign), wantErr: "certSign"},
		"should reject a certificate followed by a stranger": {cert: append(good.CertPEM(), other.CertPEM()...), key: mustKeyPEM(t, good), wantErr: "not its chain"},
		"should reject certificate data that is not PEM":     {cert: []byte("hello"), key: mustKeyPEM(t, good), wantErr: "no CERTIFICATE"},
		"should reject key data that is a certificate":       {cert: good.CertPEM(), key: good.CertPEM(), wantErr: "unexpected PEM block"},
		"should reject an empty key":                         {cert: good.CertPEM(), wantErr: "no private key"},
		"should reject a certificate whose DER is truncated": {cert: truncatedPEM(good.CertPEM()), key: mustKeyPEM(t, good), wantErr: "parsing certificate"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ca, err := LoadCA(tc.cert, tc.key)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if !ca.Cert.Equal(good.Cert) {
					t.Errorf("got another certificate, want the fixture CA")
				}
				return
			}
			if !errors.Is(err, ErrInvalidCA) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("got error %v, want one wrapping ErrInvalidCA and containing %q", err, tc.wantErr)
			}
		})
	}
}

// truncatedPEM re-encodes the first block of p with its DER cut in half.
func truncatedPEM(p []byte) []byte {
	block, _ := pem.Decode(p)
	block.Bytes = block.Bytes[:len(block.Bytes)/2]
	return pem.EncodeToMemory(block)
}

func TestCheckCATime(t *testing.T) {
	t.Parallel()
	ca := fixtureCA(t, withCAValidity(t0, t0.Add(time.Hour)))
	if err := checkCATime(ca, t0.Add(30*time.Minute)); err != nil {
		t.Errorf("inside validity: got %v, want nil", err)
	}
	if err := checkCATime(ca, t0.Add(2*time.Hour)); !errors.Is(err, ErrCAExpired) || errors.Is(err, ErrInvalidCA) {
		t.Errorf("after NotAfter: got %v, want ErrCAExpired and not ErrInvalidCA", err)
	}
	if err := checkCATime(ca, t0.Add(-time.Hour)); !errors.Is(err, ErrInvalidCA) || !strings.Contains(err.Error(), "clock") {
		t.Errorf("before NotBefore: got %v, want ErrInvalidCA mentioning the clock", err)
	}
}

func TestSerialString(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   *big.Int
		want string // what `openssl x509 -serial` would print after "serial="
	}{
		"should print nothing for a nil serial":           {in: nil, want: ""},
		"should print 00 for zero":                        {in: big.NewInt(0), want: "00"},
		"should print upper-case hex with a leading zero": {in: big.NewInt(0x0abc), want: "0ABC"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := SerialString(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRandomSerialIsPositiveAnd128Bits(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 64 {
		s, err := randomSerial()
		if err != nil {
			t.Fatal(err)
		}
		if s.Sign() <= 0 || s.BitLen() > 128 {
			t.Fatalf("got serial %x (%d bits), want positive and at most 128 bits", s, s.BitLen())
		}
		if seen[s.String()] {
			t.Fatalf("got serial %x twice", s)
		}
		seen[s.String()] = true
	}
}
