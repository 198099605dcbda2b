package certs

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"time"
)

// BundleFiles is a service's bundle: what is issued and what is on disk.
type BundleFiles struct {
	ServerCert, ServerKey []byte // tls.crt, tls.key (PEM)
	ClientCert, ClientKey []byte // client.crt, client.key (PEM)
	CA                    []byte // ca.crt: trust bundle, PEM, one or more certs

	// Set only by Volume.ReadBundle:

	Generation    string      // name of the ..data target dir, e.g. "..2026_11_29_12_00_00.123456789"
	WrittenAt     time.Time   // when that generation was written (mtime of generation dir)
	ServerKeyMode fs.FileMode // permission bits of tls.key as found (0 if not from disk)
	ClientKeyMode fs.FileMode // permission bits of client.key as found (0 if not from disk)
	// Owners of the keys as found; -1 when unknown (not from disk, or a
	// platform without numeric owners). Zero values mean root.
	ServerKeyUID, ServerKeyGID int
	ClientKeyUID, ClientKeyGID int
	// Unsafe lists the files found as something a service could use
	// against the controller; their content fields are nil.
	Unsafe []UnsafeFile
}

// UnsafeFile is a bundle file that is not a regular file with exactly one
// link. A service can replace the files in its own directory: a FIFO blocks
// whoever opens it, a device's open has side effects, a symlink or a
// directory stands where a file belongs, and a hard link can be another
// service's key, which a chown would then hand over. Writing a fresh
// generation replaces such a file.
type UnsafeFile struct {
	Name string // e.g. "tls.key"
	What string // e.g. "is a FIFO", "has 2 links"
	// Linked: a regular file whose only fault is extra hard links. Its
	// content was read: a link someone made to this file elsewhere leaves
	// the content this bundle's own.
	Linked bool
}

// String renders "tls.key is a FIFO".
func (u UnsafeFile) String() string { return u.Name + " " + u.What }

// File names inside <root>/<service>/. They follow the Kubernetes TLS secret
// naming, so images that already expect tls.crt/tls.key/ca.crt work unchanged.
const (
	FileServerCert = "tls.crt"
	FileServerKey  = "tls.key"
	FileClientCert = "client.crt"
	FileClientKey  = "client.key"
	FileCA         = "ca.crt"
)

// validateFileOrder lists the bundle's files in the order findings report them.
var validateFileOrder = []string{FileServerCert, FileServerKey, FileClientCert, FileClientKey, FileCA}

// file returns the content of the named bundle file.
func (b *BundleFiles) file(name string) []byte {
	switch name {
	case FileServerCert:
		return b.ServerCert
	case FileServerKey:
		return b.ServerKey
	case FileClientCert:
		return b.ClientCert
	case FileClientKey:
		return b.ClientKey
	case FileCA:
		return b.CA
	}
	return nil
}

// ParsedBundle is the decoded form of a BundleFiles.
type ParsedBundle struct {
	ServerCert *x509.Certificate   // first certificate of tls.crt
	ServerKey  crypto.Signer       // tls.key
	ClientCert *x509.Certificate   // first certificate of client.crt
	ClientKey  crypto.Signer       // client.key
	CAs        []*x509.Certificate // every certificate of ca.crt, in file order
}

// ParseBundle decodes every file of b. It is strict: any missing or
// unparsable file is an error naming the file (all problems joined), because
// callers use it for serials and expiry of a bundle they believe is whole.
// Use Validate to find out what is wrong with a bundle of unknown quality.
func ParseBundle(b *BundleFiles) (*ParsedBundle, error) {
	if b == nil {
		return nil, errors.New("parsing bundle: no bundle")
	}
	p := &ParsedBundle{}
	var errs []error
	for _, name := range validateFileOrder {
		data := b.file(name)
		if len(data) == 0 {
			errs = append(errs, fmt.Errorf("%s: missing", name))
			continue
		}
		var err error
		switch name {
		case FileServerCert:
			p.ServerCert, err = parseLeafPEM(data)
		case FileClientCert:
			p.ClientCert, err = parseLeafPEM(data)
		case FileServerKey:
			p.ServerKey, err = ParsePrivateKeyPEM(data)
		case FileClientKey:
			p.ClientKey, err = ParsePrivateKeyPEM(data)
		case FileCA:
			p.CAs, err = ParseCertificatesPEM(data)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("parsing bundle: %w", err)
	}
	return p, nil
}

// ParseLeaves decodes the leaf certificates of tls.crt and client.crt as
// strictly as ParseBundle, and nothing else: for a caller that needs their
// serials and dates from a bundle Validate has judged, without decoding its
// keys again.
func ParseLeaves(b *BundleFiles) (server, client *x509.Certificate, err error) {
	if b == nil {
		return nil, nil, errors.New("parsing bundle leaves: no bundle")
	}
	leaf := func(name string, data []byte) (*x509.Certificate, error) {
		if len(data) == 0 {
			return nil, fmt.Errorf("%s: missing", name)
		}
		c, err := parseLeafPEM(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return c, nil
	}
	server, errS := leaf(FileServerCert, b.ServerCert)
	client, errC := leaf(FileClientCert, b.ClientCert)
	if err := errors.Join(errS, errC); err != nil {
		return nil, nil, fmt.Errorf("parsing bundle leaves: %w", err)
	}
	return server, client, nil
}

// ParseCertificatesPEM decodes every "CERTIFICATE" block of data, in order.
// Text around blocks is ignored (OpenSSL prints a text dump before the PEM);
// any other block type, an unparsable certificate or no certificate at all
// is an error, because a trust bundle that silently drops a certificate
// breaks TLS in a way that is hard to trace back.
func ParseCertificatesPEM(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("unexpected PEM block %q, want \"CERTIFICATE\"", block.Type)
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, errors.New("no CERTIFICATE PEM block found")
	}
	return certs, nil
}

// parseLeafPEM returns the first certificate of a cert file; any further
// certificates are a chain that only the peer needs.
func parseLeafPEM(data []byte) (*x509.Certificate, error) {
	certs, err := ParseCertificatesPEM(data)
	if err != nil {
		return nil, err
	}
	return certs[0], nil
}

// encodeCertsPEM concatenates the PEM encoding of certs.
func encodeCertsPEM(certs []*x509.Certificate) []byte {
	var buf bytes.Buffer
	for _, c := range certs {
		_ = pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}) // writing to a bytes.Buffer cannot fail
	}
	return buf.Bytes()
}

// dedupeCerts drops repeated certificates (same DER), keeping first
// occurrences in order.
func dedupeCerts(certs []*x509.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(certs))
	seen := make(map[string]bool, len(certs))
	for _, c := range certs {
		if c == nil || seen[string(c.Raw)] {
			continue
		}
		seen[string(c.Raw)] = true
		out = append(out, c)
	}
	return out
}
