package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/probe"
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

// renewProberCredentials keeps the prober's client certificate fresh: it
// reissues at 2/3 of the lifetime and swaps it in without a restart.
func renewProberCredentials(ctx context.Context, p *probe.Prober, a *certs.Authority, opts certs.IssueOptions, renewAt time.Time, log *slog.Logger) error {
	for {
		t := time.NewTimer(max(time.Until(renewAt), time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		cert, roots, next, err := proberCredentials(a, opts, time.Now())
		if err != nil {
			log.Error("renewing the prober's client certificate; retrying in a minute", keyError, err)
			renewAt = time.Now().Add(time.Minute)
			continue
		}
		p.SetCredentials(cert, roots)
		renewAt = next
	}
}
