package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// controllerIdentity is the client identity the prober presents. It is a
// service of its own in the trust domain, so a service's access logs show
// the controller's probes for what they are.
const controllerIdentity = "crank-mtls-controller"

// proberCredentials issues the controller's own client certificate from the
// active CA. It lives only in memory: a restart issues a fresh one.
func proberCredentials(a *certs.Authority, opts certs.IssueOptions, now time.Time) (tls.Certificate, *x509.CertPool, time.Time, error) {
	opts.Now = now
	b, _, err := a.IssueBundle(certs.Identity{Service: controllerIdentity, DNSNames: []string{controllerIdentity}}, opts)
	if err != nil {
		return tls.Certificate{}, nil, time.Time{}, fmt.Errorf("issuing the controller's client certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(b.ClientCert, b.ClientKey)
	if err != nil {
		return tls.Certificate{}, nil, time.Time{}, fmt.Errorf("loading the controller's client certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return tls.Certificate{}, nil, time.Time{}, fmt.Errorf("parsing the controller's client certificate: %w", err)
	}
	return cert, a.TrustPool(), certs.RenewAt(leaf, certs.DefaultRenewFraction), nil
}

// rotation (issue 6): renewProberCredentials was removed. rotation.Rotator
// now owns the prober's credentials after start: it renews them at 2/3 of
// their lifetime and, during a CA rollover's overlap, presents a certificate
// signed by the successor. Two owners would undo each other's certificate.
