package certs

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults of Identity and IssueOptions.
const (
	DefaultTrustDomain  = "crank.local"
	DefaultLeafLifetime = 90 * 24 * time.Hour
	DefaultLeafBackdate = clockSkew
)

// ErrInvalidIdentity is wrapped by IssueBundle errors about an Identity that
// no certificate can be issued for. Retrying will not help.
var ErrInvalidIdentity = errors.New("invalid identity")

// Identity is who a bundle is for.
type Identity struct {
	Service     string   // the compose service (or container name); client cert CN
	DNSNames    []string // server cert SANs (caller passes Container.DNSNames(), includes "localhost")
	TrustDomain string   // default "crank.local"; client URI SAN spiffe://<td>/service/<Service>
}

// SPIFFEID returns the client certificate's URI SAN,
// spiffe://<trust-domain>/service/<service>.
func (id Identity) SPIFFEID() *url.URL {
	td := id.TrustDomain
	if td == "" {
		td = DefaultTrustDomain
	}
	return &url.URL{Scheme: "spiffe", Host: td, Path: "/service/" + id.Service}
}

// check rejects identities that would produce certificates peers cannot
// match: SPIFFE allows only [a-z0-9.-_] in the trust domain and
// [a-zA-Z0-9.-_] in path segments (spiffe-id.md, section 2).
func (id Identity) check() error {
	if id.Service == "" || id.Service == "." || id.Service == ".." || !isSPIFFEChars(id.Service, true) {
		return fmt.Errorf("%w: service %q: want letters, digits, '.', '-' or '_'", ErrInvalidIdentity, id.Service)
	}
	if id.TrustDomain != "" && !isSPIFFEChars(id.TrustDomain, false) {
		return fmt.Errorf("%w: trust domain %q: want lowercase letters, digits, '.', '-' or '_'", ErrInvalidIdentity, id.TrustDomain)
	}
	if len(id.DNSNames) == 0 {
		return fmt.Errorf("%w: service %q has no DNS names for its server certificate", ErrInvalidIdentity, id.Service)
	}
	for _, n := range id.DNSNames {
		if n == "" || strings.ContainsAny(n, " /\\\x00") {
			return fmt.Errorf("%w: service %q: DNS name %q", ErrInvalidIdentity, id.Service, n)
		}
	}
	return nil
}

func isSPIFFEChars(s string, upperOK bool) bool {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
		case upperOK && r >= 'A' && r <= 'Z':
		default:
			return false
		}
	}
	return true
}

// splitSANs puts names that are IP literals into IP SANs: a TLS client
// dialing an IP matches only iPAddress SANs, never a dNSName "10.0.0.5".
// Duplicates are dropped, order kept.
func splitSANs(names []string) (dns []string, ips []net.IP) {
	seen := map[string]bool{}
	for _, n := range names {
		n = strings.ToLower(n)
		if seen[n] {
			continue
		}
		seen[n] = true
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
			continue
		}
		dns = append(dns, n)
	}
	return dns, ips
}

// IssueOptions tunes IssueBundle. Zero values take the defaults.
type IssueOptions struct {
	KeyAlgorithm KeyAlgorithm  // default ECDSAP256
	Lifetime     time.Duration // default 90*24h
	Backdate     time.Duration // default 5m (NotBefore = now - Backdate)
	Now          time.Time     // default time.Now(); tests and the controller's clock set it
}

// IssueInfo describes an issued bundle for logs and the state store.
type IssueInfo struct {
	ServerSerial, ClientSerial string    // as SerialString prints them
	NotBefore, NotAfter        time.Time // shared by both leaves
	// Clamped is true when NotAfter was cut to the CA's NotAfter, because a
	// leaf must never outlive its issuer; the caller logs it.
	Clamped bool
}

// IssueBundle issues a server (ExtKeyUsageServerAuth, SANs=DNSNames, CN=Service) and a client
// (ExtKeyUsageClientAuth, CN=Service, URI SAN spiffe) pair signed by the Active CA; CA field = TrustBundle().
// Leaf NotAfter is clamped to the CA's NotAfter (of its whole chain); returns Clamped=true so the caller logs it.
// Each certificate file holds the leaf followed by the CA's Intermediates(),
// so a peer that trusts only the root verifies it; for a self-signed CA
// that is the leaf alone.
//
// Each leaf has its own fresh key (PKCS#8 PEM), a random 128-bit serial,
// SubjectKeyId and AuthorityKeyId. An expired active CA is an error wrapping
// ErrCAExpired; an unusable Identity one wrapping ErrInvalidIdentity.
func (a *Authority) IssueBundle(id Identity, opts IssueOptions) (b *BundleFiles, info IssueInfo, err error) {
	a.mu.RLock()
	ca, trust := a.active, a.trustCertsLocked()
	a.mu.RUnlock()
	b, info, err = issueBundle(ca, trust, id, opts)
	if err != nil {
		return nil, IssueInfo{}, fmt.Errorf("issuing bundle for %q: %w", id.Service, err)
	}
	return b, info, nil
}

// IssueBundleFrom is IssueBundle signed by ca, which must be the Active CA
// or the Successor, instead of always by the Active CA. The CA field is the
// same trust bundle (TrustBundle) as IssueBundle's.
//
// The rotation package issues the prober's client bundle from the Successor
// during a rollover's overlap: a server that has not yet reloaded the new
// trust bundle refuses that certificate and one that has accepts it, so a
// probe proves that a service trusts the new CA. Service bundles come from
// IssueBundle only.
//
// A leaf from any other CA would not chain to the trust bundle handed out
// with it, so any other ca is an error.
func (a *Authority) IssueBundleFrom(ca *CA, id Identity, opts IssueOptions) (*BundleFiles, IssueInfo, error) {
	a.mu.RLock()
	known := ca != nil && (ca == a.active || ca == a.successor ||
		(a.successor != nil && ca.Cert.Equal(a.successor.Cert)) || ca.Cert.Equal(a.active.Cert))
	trust := a.trustCertsLocked()
	a.mu.RUnlock()
	if !known {
		return nil, IssueInfo{}, fmt.Errorf("issuing bundle for %q: the signing CA is neither the active CA nor the successor", id.Service)
	}
	b, info, err := issueBundle(ca, trust, id, opts)
	if err != nil {
		return nil, IssueInfo{}, fmt.Errorf("issuing bundle for %q: %w", id.Service, err)
	}
	return b, info, nil
}

// issueBundle is IssueBundle on plain values.
func issueBundle(ca *CA, trust []*x509.Certificate, id Identity, opts IssueOptions) (*BundleFiles, IssueInfo, error) {
	if err := id.check(); err != nil {
		return nil, IssueInfo{}, err
	}
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, IssueInfo{}, err
	}
	if caEnd := ca.NotAfter(); opts.Now.After(caEnd) {
		return nil, IssueInfo{}, fmt.Errorf("%w: %q (or its chain) expired at %s", ErrCAExpired, ca.Cert.Subject.CommonName, caEnd.UTC().Format(time.RFC3339))
	}
	info := IssueInfo{NotBefore: opts.Now.Add(-opts.Backdate).UTC(), NotAfter: opts.Now.Add(opts.Lifetime).UTC()}
	if nb := ca.notBefore(); info.NotBefore.Before(nb) {
		info.NotBefore = nb
	}
	if na := ca.NotAfter(); info.NotAfter.After(na) {
		info.NotAfter, info.Clamped = na, true
	}
	dns, ips := splitSANs(id.DNSNames)
	server := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.Service},
		DNSNames:    dns,
		IPAddresses: ips,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	client := &x509.Certificate{
		Subject:     pkix.Name{CommonName: id.Service},
		URIs:        []*url.URL{id.SPIFFEID()},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	b := &BundleFiles{CA: encodeCertsPEM(trust)}
	if b.ServerCert, b.ServerKey, err = signLeaf(ca, server, opts.KeyAlgorithm, info); err != nil {
		return nil, IssueInfo{}, fmt.Errorf("server certificate: %w", err)
	}
	info.ServerSerial = SerialString(server.SerialNumber)
	if b.ClientCert, b.ClientKey, err = signLeaf(ca, client, opts.KeyAlgorithm, info); err != nil {
		return nil, IssueInfo{}, fmt.Errorf("client certificate: %w", err)
	}
	info.ClientSerial = SerialString(client.SerialNumber)
	if inter := ca.Intermediates(); len(inter) > 0 {
		chain := encodeCertsPEM(inter)
		b.ServerCert = append(b.ServerCert, chain...)
		b.ClientCert = append(b.ClientCert, chain...)
	}
	return b, info, nil
}

func (o IssueOptions) withDefaults() (IssueOptions, error) {
	if o.KeyAlgorithm == "" {
		o.KeyAlgorithm = ECDSAP256
	}
	if _, err := ParseKeyAlgorithm(string(o.KeyAlgorithm)); err != nil {
		return o, err
	}
	if o.Lifetime == 0 {
		o.Lifetime = DefaultLeafLifetime
	}
	if o.Backdate == 0 {
		o.Backdate = DefaultLeafBackdate
	}
	if o.Lifetime < 0 || o.Backdate < 0 {
		return o, fmt.Errorf("lifetime %v and backdate %v, want both > 0", o.Lifetime, o.Backdate)
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o, nil
}

// signLeaf completes tmpl (serial, validity, key IDs, key usage), signs it
// with ca and returns the certificate and key PEM. It sets
// tmpl.SerialNumber.
func signLeaf(ca *CA, tmpl *x509.Certificate, alg KeyAlgorithm, info IssueInfo) (certPEM, keyPEM []byte, err error) {
	key, err := generateKey(alg)
	if err != nil {
		return nil, nil, err
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return nil, nil, err
	}
	if tmpl.SubjectKeyId, err = subjectKeyID(key.Public()); err != nil {
		return nil, nil, err
	}
	// CreateCertificate copies the parent's SubjectKeyId into
	// AuthorityKeyId. For an operator CA without one we derive it from the
	// CA's key: RFC 5280 (4.2.1.1) wants AuthorityKeyId in every
	// certificate that is not a self-signed CA.
	if len(ca.Cert.SubjectKeyId) == 0 {
		if tmpl.AuthorityKeyId, err = subjectKeyID(ca.Cert.PublicKey); err != nil {
			return nil, nil, err
		}
	}
	tmpl.NotBefore, tmpl.NotAfter = info.NotBefore, info.NotAfter
	tmpl.KeyUsage = leafKeyUsage(key.Public())
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing: %w", err)
	}
	if keyPEM, err = MarshalPrivateKeyPEM(key); err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}
