package servicekit

import (
	"cmp"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ProblemCode says what is wrong with a bundle file. The codes match the
// controller's own findings where they mean the same thing.
type ProblemCode string

// Problem codes, in the order problems are reported.
const (
	ProblemMissing     ProblemCode = "missing"       // a required file is absent
	ProblemUnsafeFile  ProblemCode = "unsafe-file"   // not a regular file, or too large to be one
	ProblemCorrupt     ProblemCode = "corrupt"       // does not parse
	ProblemKeyMismatch ProblemCode = "key-mismatch"  // the key is not the certificate's
	ProblemWrongUsage  ProblemCode = "wrong-usage"   // a leaf lacks serverAuth / clientAuth
	ProblemExpired     ProblemCode = "expired"       // now is after NotAfter
	ProblemNotYetValid ProblemCode = "not-yet-valid" // now is before NotBefore
	ProblemWrongCA     ProblemCode = "wrong-ca"      // a leaf does not chain to ca.crt
)

var problemOrder = []ProblemCode{ProblemMissing, ProblemUnsafeFile, ProblemCorrupt, ProblemKeyMismatch,
	ProblemWrongUsage, ProblemExpired, ProblemNotYetValid, ProblemWrongCA}

// Problem is one reason a bundle file cannot be used.
type Problem struct {
	Code    ProblemCode
	File    string
	Message string
}

// String renders "tls.key: key-mismatch: ...".
func (p Problem) String() string {
	return fmt.Sprintf("%s: %s: %s", p.File, p.Code, p.Message)
}

// problemsText joins problems for a log value or an error.
func problemsText(ps []Problem) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, "; ")
}

// pairSpec is one leaf pair and the extended key usage peers demand of it.
type pairSpec struct {
	cert, key string
	usage     x509.ExtKeyUsage
}

var (
	serverPair = pairSpec{cert: FileServerCert, key: FileServerKey, usage: x509.ExtKeyUsageServerAuth}
	clientPair = pairSpec{cert: FileClientCert, key: FileClientKey, usage: x509.ExtKeyUsageClientAuth}
)

// build turns a snapshot into Material: the parts that are present and
// consistent, and a problem for everything else that is present. It is a
// pure function of its inputs.
func build(dir string, snap snapshot, now time.Time) *Material {
	m := &Material{Dir: dir, Generation: snap.generation, present: FileSet{}}
	for name := range snap.files {
		m.present[name] = true
	}
	for name, why := range snap.unsafe {
		m.present[name] = true
		m.problems = append(m.problems, Problem{Code: ProblemUnsafeFile, File: name, Message: why})
	}
	var ps []Problem
	m.Roots, ps = parseRoots(snap.files[FileCA])
	m.problems = append(m.problems, ps...)
	m.Server, ps = parsePair(serverPair, snap.files, m.Roots, now)
	m.problems = append(m.problems, ps...)
	m.Client, ps = parsePair(clientPair, snap.files, m.Roots, now)
	m.problems = append(m.problems, ps...)
	sortProblems(m.problems)
	return m
}

// sortProblems orders by code, then file.
func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		if c := cmp.Compare(slices.Index(problemOrder, a.Code), slices.Index(problemOrder, b.Code)); c != 0 {
			return c
		}
		return cmp.Compare(slices.Index(fileOrder, a.File), slices.Index(fileOrder, b.File))
	})
}

// parseRoots parses ca.crt into a pool; nil without the file.
func parseRoots(data []byte) (*x509.CertPool, []Problem) {
	if data == nil {
		return nil, nil
	}
	certs, err := parseCertsPEM(data)
	if err != nil {
		return nil, []Problem{{Code: ProblemCorrupt, File: FileCA, Message: err.Error()}}
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// parsePair returns the pair as a tls.Certificate if both files are present
// and pass every check, and the problems found otherwise. A pair with a
// file absent is nil with no problem: Problems reports what is missing.
func parsePair(p pairSpec, files map[string][]byte, roots *x509.CertPool, now time.Time) (*tls.Certificate, []Problem) {
	certPEM, keyPEM := files[p.cert], files[p.key]
	if certPEM == nil || keyPEM == nil {
		return nil, nil
	}
	var ps []Problem
	chain, err := parseCertsPEM(certPEM)
	if err != nil {
		ps = append(ps, Problem{Code: ProblemCorrupt, File: p.cert, Message: err.Error()})
	}
	key, err := parseKeyPEM(keyPEM)
	if err != nil {
		ps = append(ps, Problem{Code: ProblemCorrupt, File: p.key, Message: err.Error()})
	}
	if len(ps) > 0 {
		return nil, ps
	}
	if ps = checkLeaf(p, chain, key, roots, now); len(ps) > 0 {
		return nil, ps
	}
	ders := make([][]byte, len(chain))
	for i, c := range chain {
		ders[i] = c.Raw
	}
	return &tls.Certificate{Certificate: ders, PrivateKey: key, Leaf: chain[0]}, nil
}

// checkLeaf runs the consistency checks on a parsed pair, in order. The
// chain is verified only when nothing simpler failed, so one cause is not
// reported twice.
func checkLeaf(p pairSpec, chain []*x509.Certificate, key crypto.Signer, roots *x509.CertPool, now time.Time) []Problem {
	leaf := chain[0]
	var ps []Problem
	add := func(code ProblemCode, file, format string, args ...any) {
		ps = append(ps, Problem{Code: code, File: file, Message: fmt.Sprintf(format, args...)})
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(leaf.PublicKey) {
		add(ProblemKeyMismatch, p.key, "key does not belong to %s (serial %s)", p.cert, leaf.SerialNumber.Text(16))
	}
	if !slices.Contains(leaf.ExtKeyUsage, p.usage) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		add(ProblemWrongUsage, p.cert, "got extended key usages %v, want %s", usageNames(leaf.ExtKeyUsage), usageNames([]x509.ExtKeyUsage{p.usage}))
	}
	if now.After(leaf.NotAfter) {
		add(ProblemExpired, p.cert, "not valid after %s (now %s)", stamp(leaf.NotAfter), stamp(now))
	}
	if now.Before(leaf.NotBefore) {
		add(ProblemNotYetValid, p.cert, "not valid before %s (now %s)", stamp(leaf.NotBefore), stamp(now))
	}
	if len(ps) > 0 || roots == nil {
		return ps
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{p.usage}}
	if _, err := leaf.Verify(opts); err != nil {
		add(ProblemWrongCA, p.cert, "does not chain to %s: %v", FileCA, err)
	}
	return ps
}

// parseCertsPEM returns every CERTIFICATE block of data, at least one.
func parseCertsPEM(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing certificate %d: %w", len(out)+1, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return out, nil
}

// parseKeyPEM parses the first private key block: PKCS#8 as the controller
// writes, or the older SEC 1 and PKCS#1 forms.
func parseKeyPEM(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("no PEM private key found")
		}
		if !strings.HasSuffix(block.Type, "PRIVATE KEY") {
			continue
		}
		return parseKeyDER(block.Bytes)
	}
}

func parseKeyDER(der []byte) (crypto.Signer, error) {
	var key any
	var err error
	if key, err = x509.ParsePKCS8PrivateKey(der); err != nil {
		if key, err = x509.ParseECPrivateKey(der); err != nil {
			if key, err = x509.ParsePKCS1PrivateKey(der); err != nil {
				return nil, errors.New("private key is not PKCS#8, SEC 1 or PKCS#1")
			}
		}
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	return signer, nil
}

// usageNames spells extended key usages as OpenSSL does, for messages.
func usageNames(us []x509.ExtKeyUsage) []string {
	names := make([]string, len(us))
	for i, u := range us {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			names[i] = "serverAuth"
		case x509.ExtKeyUsageClientAuth:
			names[i] = "clientAuth"
		case x509.ExtKeyUsageAny:
			names[i] = "anyExtendedKeyUsage"
		default:
			names[i] = fmt.Sprintf("eku(%d)", u)
		}
	}
	return names
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
