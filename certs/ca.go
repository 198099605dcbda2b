package certs

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"
)

// ErrInvalidCA is wrapped by every error about CA material that exists but
// cannot be used: corrupt PEM, a key that does not match its certificate, a
// certificate without its key (or the reverse), a certificate that is not a
// CA. The controller must stop and let a human look: generating a new CA
// would silently break every peer that trusts the old one.
var ErrInvalidCA = errors.New("invalid CA")

// ErrCAExpired is wrapped by errors about a CA whose certificate has
// expired. It is deliberately distinct from ErrInvalidCA (errors.Is with
// ErrInvalidCA is false): the material is intact, and a rotation policy can
// recover by rolling over to a successor. OpenAuthority returns it together
// with the loaded Authority for that reason.
var ErrCAExpired = errors.New("CA certificate has expired")

// clockSkew is how far NotBefore is backdated by default, for CAs and
// leaves alike. Kubernetes and Pinniped use five minutes; without it a peer
// whose clock is slightly behind rejects a fresh certificate, and Go reports
// that as "expired", which sends people the wrong way (kuma#11807).
const clockSkew = 5 * time.Minute

// CA is a certificate authority: a CA certificate and its private key,
// and for an intermediate the certificates above it. A CA is immutable
// once built; share it freely.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// Chain holds the certificates above Cert, nearest first, ending at a
	// self-signed root: what an imported intermediate brings along. It is
	// empty for a self-signed CA (every CA the controller creates) and for
	// a lone CA certificate an operator placed in the state dir, which is
	// then its own trust anchor. Leaves carry Intermediates(); peers trust
	// Anchor().
	Chain []*x509.Certificate
	// Imported is set for a CA that came through `controller ca import`.
	// The rotation never replaces such a CA with one of its own before it
	// expires: that would silently take the stack out of the operator's
	// PKI. It is kept in the state dir as a first line of the CA's
	// certificate file (see ChainPEM).
	Imported bool
}

// NewCA creates a self-signed CA in memory: a key of type alg and a
// certificate valid from now-5m until now+lifetime. The CA may sign leaves
// only (path length 0): the controller never creates intermediates, and a
// leaked key then cannot mint a sub-CA.
func NewCA(commonName string, alg KeyAlgorithm, lifetime time.Duration, now time.Time) (*CA, error) {
	if strings.TrimSpace(commonName) == "" {
		return nil, errors.New("creating CA: empty common name")
	}
	if lifetime <= 0 {
		return nil, fmt.Errorf("creating CA: lifetime %v, want > 0", lifetime)
	}
	key, err := generateKey(alg)
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	return selfSignCA(commonName, key, lifetime, now)
}

// selfSignCA issues a CA certificate for an existing key.
func selfSignCA(commonName string, key crypto.Signer, lifetime time.Duration, now time.Time) (*CA, error) {
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	skid, err := subjectKeyID(key.Public())
	if err != nil {
		return nil, fmt.Errorf("creating CA: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew).UTC(),
		NotAfter:              now.Add(lifetime).UTC(),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		SubjectKeyId:          skid,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing new CA certificate: %w", err)
	}
	return &CA{Cert: cert, Key: key}, nil
}

// CertPEM returns the CA certificate as one PEM block.
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw})
}

// KeyPEM returns the CA private key as a PKCS#8 "PRIVATE KEY" PEM block.
func (ca *CA) KeyPEM() ([]byte, error) {
	return MarshalPrivateKeyPEM(ca.Key)
}

// LoadCA parses a CA from PEM: certPEM holds the CA certificate,
// optionally followed by the certificates above it up to a self-signed
// root (as ChainPEM writes it), and keyPEM its private key (PKCS#1, PKCS#8
// or SEC1; RSA, ECDSA or Ed25519). Every failure wraps ErrInvalidCA.
// LoadCA does not look at the clock: OpenAuthority judges expiry, which is
// recoverable (ErrCAExpired). It checks the structure a state file must
// have; an operator's material goes through CheckImport's full checks.
func LoadCA(certPEM, keyPEM []byte) (*CA, error) {
	certs, err := ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: certificate: %w", ErrInvalidCA, err)
	}
	cert := certs[0]
	if err := checkIsCA(cert); err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	if len(certs) > 1 {
		// Silently using only the first certificate would break peers in
		// confusing ways: the chain must lead to a root, in order.
		if chain, err = buildChain(cert, certs[1:]); err != nil {
			return nil, fmt.Errorf("%w: certificate file: %w", ErrInvalidCA, err)
		}
		if extra := len(certs) - 1 - len(chain); extra > 0 {
			return nil, fmt.Errorf("%w: certificate file holds %d certificate(s) after %q that are not its chain up to a self-signed root",
				ErrInvalidCA, extra, cert.Subject.CommonName)
		}
		for _, c := range chain {
			if err := checkIsCA(c); err != nil {
				return nil, fmt.Errorf("chain of %q: %w", cert.Subject.CommonName, err)
			}
		}
	}
	key, err := ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%w: private key: %w", ErrInvalidCA, err)
	}
	if !publicKeyMatches(cert.PublicKey, key) {
		return nil, fmt.Errorf("%w: private key does not match certificate %q", ErrInvalidCA, cert.Subject.CommonName)
	}
	return &CA{Cert: cert, Key: key, Chain: chain, Imported: bytes.HasPrefix(certPEM, []byte(importedMarker))}, nil
}

// checkIsCA applies the same rules as x509.Certificate.CheckSignatureFrom
// for a parent, so a CA we accept can actually sign leaves that Go (and
// OpenSSL) verify.
func checkIsCA(cert *x509.Certificate) error {
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return fmt.Errorf("%w: certificate %q is not a CA (basic constraints CA:TRUE missing)", ErrInvalidCA, cert.Subject.CommonName)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: certificate %q may not sign certificates (key usage lacks certSign)", ErrInvalidCA, cert.Subject.CommonName)
	}
	return nil
}

// checkCATime reports a CA whose certificate, or one above it, has expired
// (wrapping ErrCAExpired) or is not valid yet (wrapping ErrInvalidCA:
// issuing from it would produce leaves nobody accepts, and the usual cause
// is a wrong system clock).
func checkCATime(ca *CA, now time.Time) error {
	for _, c := range ca.path() {
		if now.After(c.NotAfter) {
			return fmt.Errorf("%w: %q expired at %s (now %s)", ErrCAExpired, c.Subject.CommonName,
				c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.Before(c.NotBefore) {
			return fmt.Errorf("%w: %q is not valid before %s (now %s); check the system clock", ErrInvalidCA,
				c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// serialLimit bounds serials to 128 bits: unpredictable (CA/B Forum asks for
// at least 64 random bits) and well inside RFC 5280's 20-octet limit.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// randomSerial returns a random positive serial below 2^128.
func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generating serial number: %w", err)
		}
		if n.Sign() > 0 { // zero is not a valid serial
			return n, nil
		}
	}
}

// SerialString formats a serial the way `openssl x509 -noout -serial` prints
// it (upper-case hex of the DER integer's bytes), so operators can grep.
func SerialString(serial *big.Int) string {
	if serial == nil {
		return ""
	}
	b := serial.Bytes()
	if len(b) == 0 {
		return "00"
	}
	return strings.ToUpper(hex.EncodeToString(b))
}

// stateFile is one file of an Authority's directory as read from disk.
type stateFile struct {
	data   []byte
	exists bool
}

// authorityFiles is everything OpenAuthority reads before deciding.
type authorityFiles struct {
	cert, key, nextCert, nextKey, retiring, creating stateFile
	// importCert and importKey are a CA staged by `controller ca import`
	// (StageImport), waiting to become the successor, or the first CA.
	importCert, importKey stateFile
}

// readAuthorityFiles reads every file of the state dir that OpenAuthority
// cares about, noting which exist.
func readAuthorityFiles(root *os.Root) (authorityFiles, error) {
	var f authorityFiles
	for name, dst := range map[string]*stateFile{
		authCertFile: &f.cert, authKeyFile: &f.key,
		authNextCertFile: &f.nextCert, authNextKeyFile: &f.nextKey,
		authRetiringFile: &f.retiring, authCreatingFile: &f.creating,
		authImportCertFile: &f.importCert, authImportKeyFile: &f.importKey,
	} {
		data, err := root.ReadFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return f, fmt.Errorf("reading %s: %w", name, err)
		}
		*dst = stateFile{data: data, exists: true}
	}
	return f, nil
}

// authorityState is what resolveAuthorityFiles decided: the CAs to use and
// the repairs that bring the directory back to a clean state. Repairs only
// ever finish an operation that was interrupted; none of them removes a key
// that could still be needed.
type authorityState struct {
	active, successor *CA
	retiring          []certPath

	create           bool          // no CA at all: create one
	createFromKey    crypto.Signer // first-run creation stopped after ca.key: finish it with this key
	createFromImport *CA           // no CA yet, and a usable staged import: install it as the first CA
	pendingPromote   bool          // Promote stopped after step 2: finish steps 3-4
	removeNext       bool          // a lone ca-next.key left by CreateSuccessor or Promote
	removeMarker     bool          // creation finished but ca.creating is still there
	removeImport     bool          // the staged import is already the active CA or the successor
}

// resolveAuthorityFiles decides, without I/O, what a state directory holds
// at now (which only judges whether a staged import can become the first
// CA). Each branch names the crash state it recognizes; anything else that
// is present but unusable is an error wrapping ErrInvalidCA, never a reason
// to create a CA.
func resolveAuthorityFiles(f authorityFiles, now time.Time) (authorityState, error) {
	if st, done, err := resolveCreation(f, now); done || err != nil {
		return st, err
	}
	st := authorityState{removeMarker: f.creating.exists}
	if err := resolveActive(f, &st); err != nil {
		return st, err
	}
	if err := resolveRetiring(f, &st); err != nil {
		return st, err
	}
	st.removeImport = importAdopted(f, st)
	return st, nil
}

// resolveCreation decides the cases where there is no CA pair yet: an
// interrupted or a first creation, from a new key or from a staged import.
// done is false when ca.crt and ca.key both exist and the rest of the plan
// follows.
func resolveCreation(f authorityFiles, now time.Time) (st authorityState, done bool, err error) {
	rollover := f.nextCert.exists || f.nextKey.exists || f.retiring.exists
	imported := usableImport(f, now)
	if f.creating.exists && !rollover && !f.cert.exists {
		if !f.key.exists {
			if imported != nil {
				return authorityState{createFromImport: imported}, true, nil
			}
			return authorityState{create: true}, true, nil
		}
		// Creation writes ca.key, then ca.crt; nothing was ever issued.
		key, err := ParsePrivateKeyPEM(f.key.data)
		if err != nil {
			return st, true, fmt.Errorf("%w: %s (left by an interrupted creation): %w", ErrInvalidCA, authKeyFile, err)
		}
		if imported != nil && publicKeyMatches(imported.Cert.PublicKey, key) {
			// Installing the import stopped after ca.key: its certificate
			// (with its chain) is still staged. Self-signing the key instead
			// would make a CA nobody asked for.
			return authorityState{createFromImport: imported}, true, nil
		}
		return authorityState{createFromKey: key}, true, nil
	}
	st.removeMarker = f.creating.exists
	if !f.cert.exists && !f.key.exists {
		if rollover {
			var present []string
			for name, sf := range map[string]stateFile{authNextCertFile: f.nextCert, authNextKeyFile: f.nextKey, authRetiringFile: f.retiring} {
				if sf.exists {
					present = append(present, name)
				}
			}
			slices.Sort(present)
			return st, true, fmt.Errorf("%w: %s and %s are missing but rollover files %v exist; refusing to create a new CA",
				ErrInvalidCA, authCertFile, authKeyFile, present)
		}
		if imported != nil {
			st.createFromImport = imported
		} else {
			st.create = true
		}
		return st, true, nil
	}
	if f.cert.exists != f.key.exists {
		have, missing := authCertFile, authKeyFile
		if f.key.exists {
			have, missing = missing, have
		}
		return st, true, fmt.Errorf("%w: %s exists without %s; restore the missing file or remove both to create a new CA", ErrInvalidCA, have, missing)
	}
	return st, false, nil
}

// usableImport is the staged import if it can become the first CA at now:
// both files, a CA that loads, valid now. Anything less is left alone and
// a CA is created as if there were no import: `controller ca import`
// checked the material when it staged it, so this is a half-written or
// since-expired import, and the rotator reports it by its check when it
// looks at the import's request.
func usableImport(f authorityFiles, now time.Time) *CA {
	if !f.importCert.exists || !f.importKey.exists {
		return nil
	}
	ca, err := LoadCA(f.importCert.data, f.importKey.data)
	if err != nil || checkCATime(ca, now) != nil {
		return nil
	}
	ca.Imported = true
	return ca
}

// importAdopted reports a staged import that is already the active CA or
// the successor: adopting it stopped before removing the staged files.
func importAdopted(f authorityFiles, st authorityState) bool {
	if !f.importCert.exists {
		return false
	}
	certs, err := ParseCertificatesPEM(f.importCert.data)
	if err != nil {
		return false // not ours to judge: the rotator reports it
	}
	return certs[0].Equal(st.active.Cert) || (st.successor != nil && certs[0].Equal(st.successor.Cert))
}

// resolveActive loads the active CA and the successor, finishing a
// promotion that wrote ca.crt but not yet ca.key.
func resolveActive(f authorityFiles, st *authorityState) error {
	var next *CA
	if f.nextCert.exists && f.nextKey.exists {
		var err error
		if next, err = LoadCA(f.nextCert.data, f.nextKey.data); err != nil {
			return fmt.Errorf("successor %s/%s: %w", authNextCertFile, authNextKeyFile, err)
		}
	}
	if next != nil && firstCertIs(f.cert.data, next.Cert) {
		// Promote wrote ca.crt (step 2) but maybe not ca.key: the successor
		// is active, and its key is still in ca-next.key.
		st.active, st.pendingPromote = next, true
		return nil
	}
	active, err := LoadCA(f.cert.data, f.key.data)
	if err != nil {
		return fmt.Errorf("active %s/%s: %w", authCertFile, authKeyFile, err)
	}
	st.active = active
	switch {
	case next != nil:
		st.successor = next
	case f.nextCert.exists:
		return fmt.Errorf("%w: %s exists without %s", ErrInvalidCA, authNextCertFile, authNextKeyFile)
	case f.nextKey.exists:
		// CreateSuccessor writes the key first and Promote removes it
		// last: a lone key never signed anything and is trusted nowhere.
		st.removeNext = true
	}
	return nil
}

// resolveRetiring loads the CAs still trusted after a promotion: each one's
// certificate with the chain it had as active CA (see splitPaths).
func resolveRetiring(f authorityFiles, st *authorityState) error {
	if !f.retiring.exists {
		return nil
	}
	certs, err := ParseCertificatesPEM(f.retiring.data)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrInvalidCA, authRetiringFile, err)
	}
	for _, p := range splitPaths(certs) {
		// Promote writes the old active certificate here before switching,
		// so it may still equal the active one.
		if p[0].Equal(st.active.Cert) || (st.successor != nil && p[0].Equal(st.successor.Cert)) {
			continue
		}
		for _, c := range p {
			if err := checkIsCA(c); err != nil {
				return fmt.Errorf("%s: %w", authRetiringFile, err)
			}
		}
		st.retiring = append(st.retiring, p)
	}
	st.retiring = dedupePaths(st.retiring)
	return nil
}

// firstCertIs reports whether the first certificate in certPEM is want.
func firstCertIs(certPEM []byte, want *x509.Certificate) bool {
	certs, err := ParseCertificatesPEM(certPEM)
	return err == nil && certs[0].Equal(want)
}
