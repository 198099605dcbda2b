package certs

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ImportReason names the check an operator's CA failed. Reasons are stable
// strings: the CLI prints them and tests assert them.
type ImportReason string

// Import checks, in the order CheckImport runs them.
const (
	// ImportUnreadable: a file holds no usable PEM (certificate, key or
	// chain), or the key is of a kind we cannot sign with.
	ImportUnreadable ImportReason = "unreadable"
	// ImportKeyMismatch: the key is not the certificate's.
	ImportKeyMismatch ImportReason = "key-mismatch"
	// ImportNotCA: the certificate, or one above it, lacks basic
	// constraints CA:TRUE (BasicConstraintsValid and IsCA).
	ImportNotCA ImportReason = "not-a-ca"
	// ImportNoCertSign: its key usage is present and lacks keyCertSign.
	ImportNoCertSign ImportReason = "no-cert-sign"
	// ImportChainIncomplete: no path from the certificate to a
	// self-signed root through --chain (and the certificate is no root).
	ImportChainIncomplete ImportReason = "chain-incomplete"
	// ImportPathLength: a CA above allows fewer intermediates below it
	// than sit between it and our leaves.
	ImportPathLength ImportReason = "path-length"
	// ImportNotYetValid: a certificate of the path starts in the future.
	ImportNotYetValid ImportReason = "not-yet-valid"
	// ImportExpired: a certificate of the path has expired.
	ImportExpired ImportReason = "expired"
	// ImportExpiresSoon: the path expires within one leaf lifetime, so
	// every leaf would be cut short and the CA replaced almost at once.
	ImportExpiresSoon ImportReason = "expires-within-leaf-lifetime"
	// ImportChainDoesNotVerify: a server and a client leaf issued from the
	// CA as the controller would issue them do not verify through the
	// chain (name constraints, extended key usages of a CA above, ...).
	ImportChainDoesNotVerify ImportReason = "chain-does-not-verify"
)

// ImportError is a failed import check. It wraps ErrInvalidCA.
type ImportError struct {
	Reason  ImportReason
	Message string
}

func (e *ImportError) Error() string { return fmt.Sprintf("check %s failed: %s", e.Reason, e.Message) }

// Unwrap makes errors.Is(err, ErrInvalidCA) true.
func (e *ImportError) Unwrap() error { return ErrInvalidCA }

// ImportInput is an operator's CA as read from the files given to
// `controller ca import`.
type ImportInput struct {
	// CertPEM is the CA certificate, optionally followed by the
	// certificates above it (a "fullchain" file).
	CertPEM []byte
	// KeyPEM is its private key (PKCS#1, PKCS#8 or SEC1).
	KeyPEM []byte
	// ChainPEM, optional, holds the certificates above it up to and
	// including the self-signed root, in any order.
	ChainPEM []byte
}

// ImportOptions tunes CheckImport. Zero values take the defaults.
type ImportOptions struct {
	Now time.Time // default time.Now()
	// LeafLifetime is the controller's --leaf-lifetime (default
	// DefaultLeafLifetime): the CA must outlive one.
	LeafLifetime time.Duration
	// TrustDomain of the trial client leaf (default DefaultTrustDomain).
	TrustDomain string
}

// importCandidate is an import as far as the checks got.
type importCandidate struct {
	in    ImportInput
	opts  ImportOptions
	cert  *x509.Certificate
	key   crypto.Signer
	pool  []*x509.Certificate // every other certificate given
	chain []*x509.Certificate // above cert, as far as it was found
	// chainErr says why chain does not reach a root.
	chainErr error
}

// importChecks run in this order; the first that fails decides.
var importChecks = []func(c *importCandidate) (ImportReason, string, bool){
	checkImportReadable, checkImportKey, checkImportIsCA, checkImportCertSign, checkImportChain,
	checkImportPathLength, checkImportValidity, checkImportTrial,
}

// CheckImport decides whether an operator's CA can be the controller's
// issuing CA, before anything is written: a root, or an intermediate with
// the chain above it up to a self-signed root. It runs importChecks in
// order and returns the first failure as an *ImportError, or the CA
// (Imported, with its Chain up to the root and nothing else of --chain).
// It is a pure function of its input and opts.Now.
func CheckImport(in ImportInput, opts ImportOptions) (*CA, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.LeafLifetime <= 0 {
		opts.LeafLifetime = DefaultLeafLifetime
	}
	c := &importCandidate{in: in, opts: opts}
	for _, check := range importChecks {
		if reason, msg, failed := check(c); failed {
			return nil, &ImportError{Reason: reason, Message: msg}
		}
	}
	return &CA{Cert: c.cert, Key: c.key, Chain: c.chain, Imported: true}, nil
}

func checkImportReadable(c *importCandidate) (ImportReason, string, bool) {
	certs, err := ParseCertificatesPEM(c.in.CertPEM)
	if err != nil {
		return ImportUnreadable, "certificate: " + err.Error(), true
	}
	c.cert, c.pool = certs[0], certs[1:]
	if len(c.in.ChainPEM) > 0 {
		chain, err := ParseCertificatesPEM(c.in.ChainPEM)
		if err != nil {
			return ImportUnreadable, "chain: " + err.Error(), true
		}
		c.pool = append(c.pool, chain...)
	}
	if c.key, err = ParsePrivateKeyPEM(c.in.KeyPEM); err != nil {
		return ImportUnreadable, "private key: " + err.Error(), true
	}
	c.chain, c.chainErr = buildChain(c.cert, c.pool)
	return "", "", false
}

func checkImportKey(c *importCandidate) (ImportReason, string, bool) {
	if !publicKeyMatches(c.cert.PublicKey, c.key) {
		return ImportKeyMismatch, fmt.Sprintf("the private key does not belong to certificate %q", c.cert.Subject.CommonName), true
	}
	return "", "", false
}

// path is the certificate and what was found above it.
func (c *importCandidate) path() certPath { return append(certPath{c.cert}, c.chain...) }

func checkImportIsCA(c *importCandidate) (ImportReason, string, bool) {
	for _, x := range c.path() {
		if !x.BasicConstraintsValid || !x.IsCA {
			return ImportNotCA, fmt.Sprintf("%s is not a CA: basic constraints CA:TRUE missing", c.describe(x)), true
		}
	}
	return "", "", false
}

func checkImportCertSign(c *importCandidate) (ImportReason, string, bool) {
	for _, x := range c.path() {
		// No key usage extension at all means any usage, to Go and OpenSSL.
		if x.KeyUsage != 0 && x.KeyUsage&x509.KeyUsageCertSign == 0 {
			return ImportNoCertSign, fmt.Sprintf("%s may not sign certificates: its key usage lacks keyCertSign", c.describe(x)), true
		}
	}
	return "", "", false
}

func checkImportChain(c *importCandidate) (ImportReason, string, bool) {
	if c.chainErr != nil {
		return ImportChainIncomplete, c.chainErr.Error() + "; pass the intermediates and the root with --chain", true
	}
	return "", "", false
}

// checkImportPathLength applies RFC 5280's pathLenConstraint (Go's
// MaxPathLen, with MaxPathLenZero telling a limit of 0 from no limit) to
// every CA above ours: the one at index i of the path has i intermediates
// between it and our leaves. Our own CA's limit never stops leaves.
func checkImportPathLength(c *importCandidate) (ImportReason, string, bool) {
	for i, x := range c.path() {
		limited := x.MaxPathLen > 0 || (x.MaxPathLen == 0 && x.MaxPathLenZero)
		if limited && i > x.MaxPathLen {
			return ImportPathLength, fmt.Sprintf("%s allows %d intermediate CA(s) below it (pathlen:%d), but %d sit between it and the leaves",
				c.describe(x), x.MaxPathLen, x.MaxPathLen, i), true
		}
	}
	return "", "", false
}

func checkImportValidity(c *importCandidate) (ImportReason, string, bool) {
	now, path := c.opts.Now, c.path()
	for _, x := range path {
		if now.Before(x.NotBefore) {
			return ImportNotYetValid, fmt.Sprintf("%s is not valid before %s (now %s); check the system clock", c.describe(x), utcStamp(x.NotBefore), utcStamp(now)), true
		}
		if now.After(x.NotAfter) {
			return ImportExpired, fmt.Sprintf("%s expired at %s (now %s)", c.describe(x), utcStamp(x.NotAfter), utcStamp(now)), true
		}
	}
	first := path[0]
	for _, x := range path {
		if x.NotAfter.Before(first.NotAfter) {
			first = x
		}
	}
	if end := now.Add(c.opts.LeafLifetime); first.NotAfter.Before(end) {
		return ImportExpiresSoon, fmt.Sprintf("%s expires at %s, within one leaf lifetime (%s) from now: every leaf would be cut short; import a CA valid for longer, or lower --leaf-lifetime",
			c.describe(first), utcStamp(first.NotAfter), c.opts.LeafLifetime), true
	}
	return "", "", false
}

// checkImportTrial issues a server and a client leaf the way the
// controller will, and verifies each through the chain to the root with
// Go's verifier: whatever a peer would refuse (name constraints, an
// extended key usage of a CA above, an algorithm) is refused here, before
// any service gets such a leaf.
func checkImportTrial(c *importCandidate) (ImportReason, string, bool) {
	ca := &CA{Cert: c.cert, Key: c.key, Chain: c.chain}
	id := Identity{Service: "ca-import-check", DNSNames: []string{"localhost"}, TrustDomain: c.opts.TrustDomain}
	b, _, err := issueBundle(ca, []*x509.Certificate{ca.Anchor()}, id, IssueOptions{Now: c.opts.Now, Lifetime: c.opts.LeafLifetime})
	if err != nil {
		return ImportChainDoesNotVerify, "issuing a trial leaf: " + err.Error(), true
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Anchor())
	for _, leaf := range []struct {
		file  string
		pem   []byte
		usage x509.ExtKeyUsage
	}{{FileServerCert, b.ServerCert, x509.ExtKeyUsageServerAuth}, {FileClientCert, b.ClientCert, x509.ExtKeyUsageClientAuth}} {
		if err := verifyLeafChain(leaf.pem, roots, c.opts.Now, leaf.usage); err != nil {
			return ImportChainDoesNotVerify, fmt.Sprintf("a trial %s issued from %q does not verify to %q: %v",
				leaf.file, c.cert.Subject.CommonName, ca.Anchor().Subject.CommonName, err), true
		}
	}
	return "", "", false
}

// verifyLeafChain verifies the first certificate of certPEM through the
// ones after it to roots, for usage.
func verifyLeafChain(certPEM []byte, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) error {
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return err
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err = certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	return err
}

// describe names x for a message: the imported certificate, or one above.
func (c *importCandidate) describe(x *x509.Certificate) string {
	if x == c.cert {
		return fmt.Sprintf("certificate %q", x.Subject.CommonName)
	}
	return fmt.Sprintf("chain certificate %q", x.Subject.CommonName)
}

// ImportReasonOf returns the reason of an *ImportError in err's chain, or
// "" when err is not a failed import check.
func ImportReasonOf(err error) ImportReason {
	if ie, ok := errors.AsType[*ImportError](err); ok {
		return ie.Reason
	}
	return ""
}
