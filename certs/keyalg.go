package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// KeyAlgorithm names the key type of a CA or a leaf certificate. The string
// values are what operators type in flags and environment variables.
type KeyAlgorithm string

// Supported key algorithms. ECDSA P-256 is the default everywhere: its key
// generation costs microseconds where RSA-2048 costs tens of milliseconds
// (see DESIGN-NOTES.md), and every TLS stack we meet supports it.
const (
	ECDSAP256 KeyAlgorithm = "ecdsa-p256"
	RSA2048   KeyAlgorithm = "rsa-2048"
	RSA3072   KeyAlgorithm = "rsa-3072"
	Ed25519   KeyAlgorithm = "ed25519"
)

// keyAlgorithms lists every supported algorithm in a stable order.
var keyAlgorithms = []KeyAlgorithm{ECDSAP256, RSA2048, RSA3072, Ed25519}

// KeyAlgorithms returns every supported algorithm in a stable order, for
// flag help texts.
func KeyAlgorithms() []KeyAlgorithm { return slices.Clone(keyAlgorithms) }

// ErrUnknownKeyAlgorithm is wrapped by ParseKeyAlgorithm for a name that is
// not one of KeyAlgorithms().
var ErrUnknownKeyAlgorithm = errors.New("unknown key algorithm")

// ParseKeyAlgorithm parses an algorithm name, ignoring case and surrounding
// space. An empty string is an error, not a default: defaults belong to the
// option structs, so a typo'd flag never silently becomes ECDSA.
func ParseKeyAlgorithm(s string) (KeyAlgorithm, error) {
	norm := KeyAlgorithm(strings.ToLower(strings.TrimSpace(s)))
	for _, alg := range keyAlgorithms {
		if norm == alg {
			return alg, nil
		}
	}
	names := make([]string, len(keyAlgorithms))
	for i, alg := range keyAlgorithms {
		names[i] = string(alg)
	}
	return "", fmt.Errorf("%w %q: want one of %s", ErrUnknownKeyAlgorithm, s, strings.Join(names, ", "))
}

// generateKey creates a fresh private key for alg.
func generateKey(alg KeyAlgorithm) (crypto.Signer, error) {
	switch alg {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		return rsa.GenerateKey(rand.Reader, 2048)
	case RSA3072:
		return rsa.GenerateKey(rand.Reader, 3072)
	case Ed25519:
		_, key, err := ed25519.GenerateKey(rand.Reader)
		return key, err
	default:
		return nil, fmt.Errorf("generating key: %w %q", ErrUnknownKeyAlgorithm, string(alg))
	}
}

// leafKeyUsage returns the X.509 key usage for a leaf holding pub. RSA keys
// may be used for RSA key transport in TLS 1.2 (KeyEncipherment); ECDSA and
// Ed25519 keys only ever sign. Asserting less than that makes strict
// verifiers (OpenSSL's purpose checks) reject the certificate.
func leafKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

// subjectKeyID derives a key identifier from pub with RFC 7093 method 1: the
// leftmost 160 bits of the SHA-256 of the subjectPublicKey bit string. Leaf
// templates need it explicitly because x509.CreateCertificate only fills it
// in for CAs; it is also our AuthorityKeyId for operator CAs that lack one.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshalling public key: %w", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil, fmt.Errorf("parsing marshalled public key: %w", err)
	}
	sum := sha256.Sum256(spki.PublicKey.Bytes)
	return sum[:20], nil
}

// publicKeyMatches reports whether key is the private half of pub.
func publicKeyMatches(pub crypto.PublicKey, key crypto.Signer) bool {
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(key.Public())
}

// MarshalPrivateKeyPEM encodes key as a PKCS#8 "PRIVATE KEY" PEM block, the
// one format every TLS library reads for all three key types.
func MarshalPrivateKeyPEM(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshalling private key as PKCS#8: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// PEM block types of the private key encodings we read.
const (
	pemPKCS8          = "PRIVATE KEY"
	pemPKCS1          = "RSA PRIVATE KEY"
	pemSEC1           = "EC PRIVATE KEY"
	pemECParameters   = "EC PARAMETERS" // printed by `openssl ecparam -genkey`; carries nothing we need
	pemEncryptedPKCS8 = "ENCRYPTED PRIVATE KEY"
)

// ParsePrivateKeyPEM reads exactly one private key from PEM data: PKCS#8
// ("PRIVATE KEY"), PKCS#1 ("RSA PRIVATE KEY") or SEC1 ("EC PRIVATE KEY"), as
// written by Go, OpenSSL, cfssl, step and mkcert. The key must be RSA, ECDSA
// or Ed25519. Text around the PEM blocks is ignored, as OpenSSL does;
// encrypted keys and files holding several keys are rejected because the
// controller could not know which to use.
func ParsePrivateKeyPEM(data []byte) (crypto.Signer, error) {
	var found *pem.Block
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case pemECParameters:
			continue
		case pemEncryptedPKCS8:
			return nil, errors.New("private key is encrypted; provide an unencrypted key")
		case pemPKCS8, pemPKCS1, pemSEC1:
			if _, ok := block.Headers["DEK-Info"]; ok {
				return nil, errors.New("private key is encrypted (legacy PEM encryption); provide an unencrypted key")
			}
			if found != nil {
				return nil, errors.New("more than one private key in PEM data")
			}
			found = block
		default:
			return nil, fmt.Errorf("unexpected PEM block %q in private key data", block.Type)
		}
	}
	if found == nil {
		return nil, errors.New("no private key PEM block found")
	}
	return parsePrivateKeyDER(found.Type, found.Bytes)
}

// parsePrivateKeyDER decodes der according to its PEM label. Labels are
// trusted: a "PRIVATE KEY" that is really PKCS#1 is a broken file, and saying
// so is clearer than guessing.
func parsePrivateKeyDER(label string, der []byte) (crypto.Signer, error) {
	var (
		key any
		err error
	)
	switch label {
	case pemPKCS8:
		key, err = x509.ParsePKCS8PrivateKey(der)
	case pemPKCS1:
		key, err = x509.ParsePKCS1PrivateKey(der)
	case pemSEC1:
		key, err = x509.ParseECPrivateKey(der)
	}
	if err != nil {
		return nil, fmt.Errorf("parsing %q PEM block: %w", label, err)
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, nil
	case *ecdsa.PrivateKey:
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	default:
		return nil, fmt.Errorf("unsupported private key type %T: want RSA, ECDSA or Ed25519", key)
	}
}
