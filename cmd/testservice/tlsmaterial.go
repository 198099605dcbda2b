package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"math/big"
	"time"

	"github.com/crank-platform/crank-mtls-controller/servicekit"
)

// selfSignedMaterial is what a theater-mode service without certs serves,
// in the form servicekit's server config takes.
func selfSignedMaterial(service string, now time.Time) (*servicekit.Material, error) {
	cert, err := selfSigned(service, now)
	if err != nil {
		return nil, err
	}
	return &servicekit.Material{Generation: "self-signed", Server: &cert}, nil
}

// selfSigned makes the untrusted cert a theater-mode service serves when it
// has none: nobody's CA signed it, so a verifying client must reject it.
func selfSigned(service string, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating self-signed key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generating serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: service},
		DNSNames:     []string{service, "localhost"},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("self-signing: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// serverTLSConfig is the HTTPS listener's config: every handshake takes
// the certificate (and, at mtls, the client CAs) current at that moment.
// HTTP/1.1 only: the Python services speak it, and /ws needs Hijack,
// which HTTP/2 connections do not support.
func serverTLSConfig(current func() *servicekit.Material, level Level) *tls.Config {
	return servicekit.ServerConfig(current, level, &tls.Config{NextProtos: []string{"http/1.1"}})
}

// clientTLSConfig reads the bundle once and builds the config for one
// outgoing connection: trust only ca.crt, verify the server name, present
// client.crt when there is one. It never skips verification; that is the
// theater this product exists to remove.
func clientTLSConfig(certsDir, serverName string, requireClientCert bool) (*tls.Config, error) {
	m, err := servicekit.Load(certsDir, time.Now())
	if err != nil {
		return nil, err
	}
	cfg, err := m.ClientConfig(serverName, requireClientCert)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certsDir, err)
	}
	return cfg, nil
}
