package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// material is one loaded generation of what the HTTPS listener serves.
type material struct {
	cert tls.Certificate
	// clientCAs is non-nil only at level mtls; it switches on
	// RequireAndVerifyClientCert.
	clientCAs   *x509.CertPool
	fingerprint string // hex SHA-256 of the served leaf
}

// loadMaterial reads the files the decision needs. A present but broken
// bundle is an error: like uvicorn with a bad ssl_certfile, the service
// refuses to start rather than silently downgrade.
func loadMaterial(cfg config, d decision, now time.Time) (*material, error) {
	var (
		m   material
		err error
	)
	if d.SelfSigned {
		m.cert, err = selfSigned(cfg.Service, now)
	} else {
		m.cert, err = tls.LoadX509KeyPair(filepath.Join(cfg.CertsDir, fileServerCert), filepath.Join(cfg.CertsDir, fileServerKey))
	}
	if err != nil {
		return nil, fmt.Errorf("loading server cert: %w", err)
	}
	if d.Level == LevelMTLS {
		if m.clientCAs, err = loadPool(filepath.Join(cfg.CertsDir, fileCA)); err != nil {
			return nil, err
		}
	}
	sum := sha256.Sum256(m.cert.Certificate[0])
	m.fingerprint = hex.EncodeToString(sum[:])
	return &m, nil
}

func loadPool(path string) (*x509.CertPool, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading trust bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return nil, fmt.Errorf("reading trust bundle %s: no PEM certificates found", path)
	}
	return pool, nil
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

// tlsServer hands every handshake the current material. Without a reload
// signal the pointer is set once, which is exactly uvicorn's load-once
// behaviour; with one, reload swaps it and new handshakes see new files.
type tlsServer struct {
	cur atomic.Pointer[material]
}

func (s *tlsServer) config() *tls.Config {
	// HTTP/1.1 only: the Python services speak it, and /ws needs Hijack,
	// which HTTP/2 connections do not support.
	protos := []string{"http/1.1"}
	return &tls.Config{
		NextProtos: protos,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			c := &tls.Config{Certificates: []tls.Certificate{m.cert}, NextProtos: protos}
			if m.clientCAs != nil {
				c.ClientAuth = tls.RequireAndVerifyClientCert
				c.ClientCAs = m.clientCAs
			}
			return c, nil
		},
	}
}

// clientTLSConfig builds the config for outgoing calls: trust only ca.crt,
// verify the server name, present client.crt when there is one. It never
// skips verification; that is the theater this product exists to remove.
func clientTLSConfig(certsDir, serverName string, requireClientCert bool) (*tls.Config, error) {
	pool, err := loadPool(filepath.Join(certsDir, fileCA))
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: serverName}
	pair, err := tls.LoadX509KeyPair(filepath.Join(certsDir, fileClientCert), filepath.Join(certsDir, fileClientKey))
	switch {
	case err == nil:
		cfg.Certificates = []tls.Certificate{pair}
	case requireClientCert:
		return nil, fmt.Errorf("loading client cert: %w", err)
	}
	return cfg, nil
}
