package servicekit

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// Material is one loaded generation of a bundle. It is never modified once
// built; a Source replaces it whole.
type Material struct {
	// Dir is the directory it was read from.
	Dir string
	// Generation is the ..data target it was read from, or a digest of the
	// files for a directory of plain files.
	Generation string
	// Server is tls.crt with tls.key; nil unless both are present and
	// consistent.
	Server *tls.Certificate
	// Client is client.crt with client.key; nil unless both are present
	// and consistent.
	Client *tls.Certificate
	// Roots is ca.crt; nil unless present and parsable.
	Roots *x509.CertPool

	present  FileSet
	problems []Problem
}

// Load reads and checks the bundle in dir as it is now. A missing or
// broken file is not an error: Problems says what keeps the material from
// being complete and consistent. Errors are I/O failures, such as a
// directory the process may not read.
func Load(dir string, now time.Time) (*Material, error) {
	snap, err := readSnapshot(dir)
	if err != nil {
		return nil, fmt.Errorf("loading bundle from %s: %w", dir, err)
	}
	return build(dir, snap, now), nil
}

// Present returns the files the generation holds, usable or not.
func (m *Material) Present() FileSet {
	out := FileSet{}
	for n := range m.present {
		out[n] = true
	}
	return out
}

// Problems returns what keeps m from being a complete, consistent bundle
// holding need: each file of need that is absent, then every problem of the
// files present, whether needed or not (a broken file in a new generation
// means the generation is bad). Nil means usable.
func (m *Material) Problems(need FileSet) []Problem {
	var out []Problem
	for _, name := range m.present.missing(need) {
		out = append(out, Problem{Code: ProblemMissing, File: name, Message: "file is absent"})
	}
	return append(out, m.problems...)
}

// Level is the level the material's usable parts support.
func (m *Material) Level() Level {
	switch {
	case m == nil || m.Server == nil:
		return LevelPlain
	case m.Roots == nil:
		return LevelTLS
	}
	return LevelMTLS
}

// ServerFingerprint is the hex SHA-256 of the server leaf, "" without one:
// what a prober sees served.
func (m *Material) ServerFingerprint() string {
	if m == nil || m.Server == nil || len(m.Server.Certificate) == 0 {
		return ""
	}
	sum := sha256.Sum256(m.Server.Certificate[0])
	return hex.EncodeToString(sum[:])
}

// ErrNoTrustBundle means there is no usable ca.crt to verify a peer with.
// The kit never connects without verifying.
var ErrNoTrustBundle = errors.New("no usable trust bundle (ca.crt)")

// ErrNoClientCert means a client certificate was required and there is no
// usable client pair.
var ErrNoClientCert = errors.New("no usable client certificate (client.crt, client.key)")

// ClientConfig returns a config for connections to serverName that trusts
// only ca.crt and presents the client pair, all from this material. With
// needCert, a missing client pair is an error wrapping ErrNoClientCert;
// without it, the config presents no certificate.
func (m *Material) ClientConfig(serverName string, needCert bool) (*tls.Config, error) {
	if m == nil || m.Roots == nil {
		return nil, ErrNoTrustBundle
	}
	cfg := &tls.Config{RootCAs: m.Roots, ServerName: serverName}
	switch {
	case m.Client != nil:
		cfg.Certificates = []tls.Certificate{*m.Client}
	case needCert:
		return nil, ErrNoClientCert
	}
	return cfg, nil
}
