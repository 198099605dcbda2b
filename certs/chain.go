package certs

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"
)

// importedMarker is the first line of a CA certificate file in the state
// dir when the CA came through `controller ca import`. It travels with the
// certificate through ca-next.crt and ca.crt, in the same atomic write, so
// the origin of the active CA survives restarts and crashes without a file
// of its own. PEM readers (Go's and OpenSSL's) skip text before a block.
const importedMarker = "# imported with `controller ca import`: the controller does not replace this CA by itself\n"

// maxChainLen bounds how many certificates above a CA are followed; real
// PKIs use one or two intermediates.
const maxChainLen = 8

// certPath is a CA certificate followed by the certificates above it,
// nearest first. A path that ends in a self-signed certificate is complete;
// a lone certificate that is not self-signed is its own trust anchor (a CA
// an operator placed in the state dir before chains were supported).
type certPath []*x509.Certificate

// anchor is what peers must trust for leaves under the path: its last
// certificate.
func (p certPath) anchor() *x509.Certificate { return p[len(p)-1] }

// Anchor returns the certificate peers trust for leaves of ca: the root at
// the end of its Chain, or Cert itself for a self-signed CA (or a lone one).
func (ca *CA) Anchor() *x509.Certificate { return ca.path().anchor() }

// path is Cert followed by Chain.
func (ca *CA) path() certPath {
	return append(certPath{ca.Cert}, ca.Chain...)
}

// Intermediates are the certificates a leaf of ca must carry after itself
// so that a peer trusting only Anchor can verify it: Cert and Chain without
// the anchor. Empty for a self-signed CA, so such leaves stay one
// certificate, as they always were.
func (ca *CA) Intermediates() []*x509.Certificate {
	p := ca.path()
	return p[:len(p)-1]
}

// NotAfter is when the first certificate of Cert and Chain expires: no
// leaf of ca verifies after it.
func (ca *CA) NotAfter() time.Time {
	na := ca.Cert.NotAfter
	for _, c := range ca.Chain {
		if c.NotAfter.Before(na) {
			na = c.NotAfter
		}
	}
	return na
}

// notBefore is when the last certificate of Cert and Chain becomes valid.
func (ca *CA) notBefore() time.Time {
	nb := ca.Cert.NotBefore
	for _, c := range ca.Chain {
		if c.NotBefore.After(nb) {
			nb = c.NotBefore
		}
	}
	return nb
}

// ChainPEM is the state dir's form of ca's certificate: Cert then Chain as
// PEM, after the imported marker for an imported CA. For a CA the
// controller created it is exactly CertPEM.
func (ca *CA) ChainPEM() []byte {
	var out []byte
	if ca.Imported {
		out = []byte(importedMarker)
	}
	return append(out, encodeCertsPEM(ca.path())...)
}

// isSelfSigned reports whether c names itself as issuer and its own key
// verifies its signature.
func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && signedBy(c, c)
}

// signedBy reports whether parent's key made child's signature and parent
// is named as child's issuer. It checks nothing else about parent (that it
// is a CA, its key usage): callers that need those say which one failed.
func signedBy(child, parent *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) &&
		parent.CheckSignature(child.SignatureAlgorithm, child.RawTBSCertificate, child.Signature) == nil
}

// buildChain finds, among pool, the certificates above cert up to a
// self-signed root, nearest first. A self-signed cert has an empty chain.
// On failure it returns what it found so far and an error naming the
// certificate whose issuer is missing.
func buildChain(cert *x509.Certificate, pool []*x509.Certificate) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for cur := cert; !isSelfSigned(cur); {
		var parent *x509.Certificate
		for _, c := range pool {
			if signedBy(cur, c) && !c.Equal(cur) && !containsCert(chain, c) {
				parent = c
				break
			}
		}
		if parent == nil {
			return chain, fmt.Errorf("no certificate in the chain issued %q (its issuer is %q), so it does not lead to a self-signed root",
				cur.Subject.CommonName, cur.Issuer.CommonName)
		}
		if chain = append(chain, parent); len(chain) > maxChainLen {
			return chain, fmt.Errorf("the chain above %q is longer than %d certificates", cert.Subject.CommonName, maxChainLen)
		}
		cur = parent
	}
	return chain, nil
}

// splitPaths groups a flat list of certificates, as ca-retiring.crt holds
// them, into paths: each path runs on while the next certificate issued the
// previous one, and ends at a self-signed certificate. Retiring CAs the
// controller created are self-signed, so each is a path of its own.
func splitPaths(certs []*x509.Certificate) []certPath {
	var out []certPath
	for i := 0; i < len(certs); {
		p := certPath{certs[i]}
		for i++; i < len(certs) && !isSelfSigned(p[len(p)-1]) && signedBy(p[len(p)-1], certs[i]); i++ {
			p = append(p, certs[i])
		}
		out = append(out, p)
	}
	return out
}

// encodePaths is the PEM of every path, one after the other.
func encodePaths(paths []certPath) []byte {
	var out []byte
	for _, p := range paths {
		out = append(out, encodeCertsPEM(p)...)
	}
	return out
}

// dedupePaths drops paths whose head repeats an earlier one's.
func dedupePaths(paths []certPath) []certPath {
	out := make([]certPath, 0, len(paths))
	for _, p := range paths {
		if !containsPathHead(out, p[0]) {
			out = append(out, p)
		}
	}
	return out
}

func containsPathHead(paths []certPath, c *x509.Certificate) bool {
	for _, p := range paths {
		if p[0].Equal(c) {
			return true
		}
	}
	return false
}

func containsCert(certs []*x509.Certificate, c *x509.Certificate) bool {
	for _, x := range certs {
		if x.Equal(c) {
			return true
		}
	}
	return false
}

// certFingerprint is the hex SHA-256 of c's DER, the form the probe and the
// rotation print.
func certFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}
