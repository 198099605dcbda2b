package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"testing"
	"time"
)

// Pair is a certificate with its private key, decoded and as PEM.
type Pair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte // one CERTIFICATE block
	KeyPEM  []byte // one PKCS#8 PRIVATE KEY block
}

// CA is a certificate authority that signs leaves with Issue and
// intermediates with NewIntermediate.
type CA struct {
	Pair
	// Parents are the certificates above this CA, nearest first, ending at
	// the self-signed root; empty for a root.
	Parents []*x509.Certificate
}

// spec is what the options set; NewCA and Issue start from their own
// defaults.
type spec struct {
	cn          string
	dnsNames    []string
	notBefore   time.Time
	notAfter    time.Time
	key         crypto.Signer
	keyUsage    x509.KeyUsage
	extKeyUsage []x509.ExtKeyUsage
	isCA        bool
	// maxPathLen is the basic constraints' path length; nil keeps the
	// default of NewCA and NewIntermediate (0), negative means no limit.
	maxPathLen *int
}

// Option adjusts a certificate made by NewCA or Issue.
type Option func(*spec)

// WithCommonName sets the subject's common name.
func WithCommonName(cn string) Option { return func(s *spec) { s.cn = cn } }

// WithDNSNames sets the DNS SANs. A leaf without this option has its common
// name as its one DNS name.
func WithDNSNames(names ...string) Option { return func(s *spec) { s.dnsNames = names } }

// WithValidity sets NotBefore and NotAfter.
func WithValidity(notBefore, notAfter time.Time) Option {
	return func(s *spec) { s.notBefore, s.notAfter = notBefore, notAfter }
}

// WithKey uses key instead of a fresh ECDSA P-256 key, e.g. an Ed25519 or
// RSA key for a test of another algorithm.
func WithKey(key crypto.Signer) Option { return func(s *spec) { s.key = key } }

// WithKeyUsage sets the key usage bits.
func WithKeyUsage(u x509.KeyUsage) Option { return func(s *spec) { s.keyUsage = u } }

// WithExtKeyUsage sets the extended key usages of a leaf, or of a CA,
// which then constrains the leaves under it (as Go's verifier reads it).
func WithExtKeyUsage(u ...x509.ExtKeyUsage) Option { return func(s *spec) { s.extKeyUsage = u } }

// NotCA makes NewCA's certificate claim not to be a CA (basic constraints
// CA:FALSE), for tests of code that must refuse it.
func NotCA() Option { return func(s *spec) { s.isCA = false } }

// WithMaxPathLen sets how many intermediate CAs may follow a CA made by
// NewCA or NewIntermediate: 0 (their default) allows leaves only, and a
// negative n leaves the path length out (no limit).
func WithMaxPathLen(n int) Option { return func(s *spec) { s.maxPathLen = &n } }

// NewCA returns a self-signed CA. By default it is named "testpki CA", has
// a fresh ECDSA P-256 key, may sign certificates and CRLs (but no further
// CAs: WithMaxPathLen allows them), and is valid from an hour ago for a day.
func NewCA(t testing.TB, opts ...Option) *CA {
	t.Helper()
	s := caSpec("testpki CA", opts)
	tmpl := s.caTemplate(t)
	return &CA{Pair: sign(t, tmpl, tmpl, s.key, s.key)}
}

// NewIntermediate returns a CA signed by ca, the way a corporate PKI hands
// out an issuing CA. Its defaults are NewCA's, named "testpki
// intermediate"; ca must allow it (WithMaxPathLen on ca) for a verifier to
// accept leaves under it, and tests of refusals make one that does not.
func (ca *CA) NewIntermediate(t testing.TB, opts ...Option) *CA {
	t.Helper()
	s := caSpec("testpki intermediate", opts)
	tmpl := s.caTemplate(t)
	pair := sign(t, tmpl, ca.Cert, s.key, ca.Key)
	return &CA{Pair: pair, Parents: append([]*x509.Certificate{ca.Cert}, ca.Parents...)}
}

// ChainPEM is the CA's certificate followed by its Parents up to the root,
// as an operator's "fullchain" file holds them.
func (ca *CA) ChainPEM() []byte {
	return CertPEM(append([]*x509.Certificate{ca.Cert}, ca.Parents...)...)
}

// ParentsPEM is the Parents alone, as a --chain file holds them.
func (ca *CA) ParentsPEM() []byte { return CertPEM(ca.Parents...) }

// Root is the self-signed certificate at the top of ca's chain.
func (ca *CA) Root() *x509.Certificate {
	if len(ca.Parents) == 0 {
		return ca.Cert
	}
	return ca.Parents[len(ca.Parents)-1]
}

// caSpec is the spec of a CA before opts: valid from an hour ago for a day,
// signing certificates and CRLs, path length 0.
func caSpec(cn string, opts []Option) spec {
	now := time.Now()
	zero := 0
	s := spec{
		cn: cn, isCA: true, maxPathLen: &zero,
		notBefore: now.Add(-time.Hour), notAfter: now.Add(24 * time.Hour),
		keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	for _, o := range opts {
		o(&s)
	}
	return s
}

// caTemplate is the template of a CA certificate, basic constraints set
// from isCA and maxPathLen.
func (s *spec) caTemplate(t testing.TB) *x509.Certificate {
	t.Helper()
	tmpl := s.template(t)
	tmpl.IsCA = s.isCA
	tmpl.ExtKeyUsage = s.extKeyUsage
	if s.isCA {
		switch n := *s.maxPathLen; {
		case n < 0:
			tmpl.MaxPathLen = -1
		case n == 0:
			tmpl.MaxPathLenZero = true
		default:
			tmpl.MaxPathLen = n
		}
	}
	return tmpl
}

// Issue returns a leaf signed by ca. By default it is named "leaf" (also
// its DNS name), has a fresh ECDSA P-256 key, is a TLS server certificate
// and is valid from an hour ago for an hour.
func (ca *CA) Issue(t testing.TB, opts ...Option) *Pair {
	t.Helper()
	now := time.Now()
	s := spec{
		cn:        "leaf",
		notBefore: now.Add(-time.Hour), notAfter: now.Add(time.Hour),
		keyUsage:    x509.KeyUsageDigitalSignature,
		extKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, o := range opts {
		o(&s)
	}
	if s.dnsNames == nil {
		s.dnsNames = []string{s.cn}
	}
	tmpl := s.template(t)
	tmpl.DNSNames = s.dnsNames
	tmpl.ExtKeyUsage = s.extKeyUsage
	leaf := sign(t, tmpl, ca.Cert, s.key, ca.Key)
	return &leaf
}

// Pool returns a pool holding only the CA, for a verifying TLS config.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// RootPool returns a pool holding only ca's Root: what a peer trusts when
// leaves under an intermediate come with their chain.
func (ca *CA) RootPool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root())
	return p
}

// template fills in the fields a CA and a leaf share, and the key if no
// option gave one.
func (s *spec) template(t testing.TB) *x509.Certificate {
	t.Helper()
	if s.key == nil {
		s.key = NewKey(t)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("testpki: drawing a serial: %v", err)
	}
	return &x509.Certificate{
		SerialNumber:          serial.Add(serial, big.NewInt(1)), // never zero
		Subject:               pkix.Name{CommonName: s.cn},
		NotBefore:             s.notBefore,
		NotAfter:              s.notAfter,
		KeyUsage:              s.keyUsage,
		BasicConstraintsValid: true,
	}
}

// sign creates tmpl for key, signed by parent's signer, and encodes both.
func sign(t testing.TB, tmpl, parent *x509.Certificate, key, signer crypto.Signer) Pair {
	t.Helper()
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), signer)
	if err != nil {
		t.Fatalf("testpki: creating %q: %v", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testpki: parsing %q: %v", tmpl.Subject.CommonName, err)
	}
	return Pair{Cert: cert, Key: key, CertPEM: CertPEM(cert), KeyPEM: KeyPEM(t, key)}
}

// NewKey returns a fresh ECDSA P-256 key.
func NewKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testpki: generating a key: %v", err)
	}
	return key
}

// CertPEM encodes certs as consecutive CERTIFICATE blocks, e.g. a trust
// bundle.
func CertPEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// KeyPEM encodes key as one PKCS#8 PRIVATE KEY block.
func KeyPEM(t testing.TB, key crypto.Signer) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("testpki: encoding a %T: %v", key, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
