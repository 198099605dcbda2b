package status

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// ListenerIdentity is the service name in the status listener's server
// certificate: the controller itself, as the prober's client identity.
const ListenerIdentity = "crank-mtls-controller"

// retryRenewal is how long a listener waits before trying again after a
// failed renewal of its server certificate, keeping the old one meanwhile.
const retryRenewal = time.Minute

// ListenerTLS issues the status listener's server certificate from a (CN
// ListenerIdentity, SANs dnsNames; IP literals become IP SANs) and returns a
// server configuration that requires a client certificate chaining to the
// authority's trust bundle.
//
// The configuration keeps itself current without a restart: each handshake
// reads the trust pool afresh (so a CA rollover is honoured on both sides)
// and reissues the server certificate once two thirds of its lifetime have
// passed, as the prober's credentials do.
//
// Any identity of the trust domain is accepted, services included; the
// surface is read-only and carries no key material.
func ListenerTLS(a *certs.Authority, dnsNames []string, opts certs.IssueOptions, now time.Time) (*tls.Config, error) {
	lc, err := newListenerCreds(a, dnsNames, opts, now, time.Now)
	if err != nil {
		return nil, err
	}
	return lc.config(), nil
}

// listenerCreds is the listener's renewable server certificate.
type listenerCreds struct {
	a     *certs.Authority
	id    certs.Identity
	opts  certs.IssueOptions
	clock func() time.Time

	mu      sync.Mutex
	cert    tls.Certificate
	renewAt time.Time
}

func newListenerCreds(a *certs.Authority, dnsNames []string, opts certs.IssueOptions, now time.Time, clock func() time.Time) (*listenerCreds, error) {
	if len(dnsNames) == 0 {
		return nil, fmt.Errorf("status listener certificate: no DNS names or addresses")
	}
	lc := &listenerCreds{
		a:     a,
		id:    certs.Identity{Service: ListenerIdentity, DNSNames: dnsNames},
		opts:  opts,
		clock: clock,
	}
	cert, renewAt, err := lc.issue(now)
	if err != nil {
		return nil, err
	}
	lc.cert, lc.renewAt = cert, renewAt
	return lc, nil
}

func (lc *listenerCreds) issue(now time.Time) (tls.Certificate, time.Time, error) {
	opts := lc.opts
	opts.Now = now
	b, _, err := lc.a.IssueBundle(lc.id, opts)
	if err != nil {
		return tls.Certificate{}, time.Time{}, fmt.Errorf("issuing the status listener's certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(b.ServerCert, b.ServerKey)
	if err != nil {
		return tls.Certificate{}, time.Time{}, fmt.Errorf("loading the status listener's certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, time.Time{}, fmt.Errorf("parsing the status listener's certificate: %w", err)
	}
	cert.Leaf = leaf
	return cert, certs.RenewAt(leaf, certs.DefaultRenewFraction), nil
}

// current returns the server certificate, renewing it first when due. A
// failed renewal keeps serving the old certificate (still valid for a third
// of its lifetime) and is retried a minute later.
func (lc *listenerCreds) current() tls.Certificate {
	lc.mu.Lock()
	defer lc.mu.Unlock()
	now := lc.clock()
	// Reissue when due, and at once when the issuing CA changed (a CA
	// rollover's promote): clients that received the new trust bundle
	// could not verify a leaf of the old CA after it is retired.
	sameIssuer := lc.cert.Leaf != nil && lc.cert.Leaf.CheckSignatureFrom(lc.a.Active().Cert) == nil
	if now.Before(lc.renewAt) && sameIssuer {
		return lc.cert
	}
	cert, renewAt, err := lc.issue(now)
	if err != nil {
		lc.renewAt = now.Add(retryRenewal)
		return lc.cert
	}
	lc.cert, lc.renewAt = cert, renewAt
	return lc.cert
}

func (lc *listenerCreds) config() *tls.Config {
	perHandshake := func() *tls.Config {
		return &tls.Config{
			MinVersion:   tls.VersionTLS12,
			Certificates: []tls.Certificate{lc.current()},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    lc.a.TrustPool(),
		}
	}
	base := perHandshake()
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return perHandshake(), nil }
	return base
}
