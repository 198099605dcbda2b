package certs

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"io/fs"
	"net"
	"slices"
	"strings"
	"time"
)

// Reason says why a bundle is not good as it is. Reasons are stable strings:
// they go into logs, metrics labels and the state store.
type Reason string

// Reasons, in the order Validate checks them.
const (
	// ReasonUnsafeFile: a file is not a regular file with one link (a FIFO,
	// device, socket, symlink, directory or hard link; see UnsafeFile). It
	// comes first because the file was planted, not merely lost.
	ReasonUnsafeFile  Reason = "unsafe-file"
	ReasonMissing     Reason = "missing"      // a file is absent or empty
	ReasonCorrupt     Reason = "corrupt"      // a file does not parse
	ReasonKeyMismatch Reason = "key-mismatch" // a key is not the one of its certificate
	// ReasonWrongCA: a leaf does not verify to any anchor of the trust
	// bundle through the intermediates its own file carries after it.
	ReasonWrongCA Reason = "wrong-ca"
	// ReasonWrongIssuer: chains to a trusted CA but not the ACTIVE one (after a Promote).
	ReasonWrongIssuer Reason = "wrong-issuer"
	// ReasonSANMismatch: the server cert does not cover every expected DNS
	// name, or the client cert's CN/URI is not the service's.
	ReasonSANMismatch Reason = "san-mismatch"
	// ReasonWrongUsage: a leaf lacks its extended key usage (serverAuth for
	// tls.crt, clientAuth for client.crt), e.g. the two were swapped. Peers
	// would refuse it; only a reissue fixes it.
	ReasonWrongUsage  Reason = "wrong-usage"
	ReasonExpired     Reason = "expired"       // now is after NotAfter
	ReasonNotYetValid Reason = "not-yet-valid" // now is before NotBefore
	ReasonRenewDue    Reason = "renew-due"     // RenewFraction of the lifetime has passed
	// ReasonTrustBundleStale: ca.crt differs from the authority's current
	// TrustBundle(); rewriting ca.crt fixes it.
	ReasonTrustBundleStale Reason = "trust-bundle-stale"
	// ReasonBadPermissions: a key's mode is not Expectation.KeyMode; a chmod
	// fixes it.
	ReasonBadPermissions Reason = "bad-permissions"
)

// DefaultRenewFraction renews at two thirds of a leaf's lifetime, as
// cert-manager does: a third of the lifetime (a month for 90-day leaves) is
// left to notice and fix a failing renewal.
const DefaultRenewFraction = 2.0 / 3.0

// Finding is one problem with one file of a bundle.
type Finding struct {
	Reason  Reason
	File    string // e.g. "tls.crt"; empty for the bundle as a whole
	Message string // human-readable detail, "got X, want Y" where it fits
}

// String renders "tls.crt: expired: not valid after ...".
func (f Finding) String() string {
	if f.File == "" {
		return fmt.Sprintf("%s: %s", f.Reason, f.Message)
	}
	return fmt.Sprintf("%s: %s: %s", f.File, f.Reason, f.Message)
}

// Reasons returns the reasons of fs in order, without duplicates.
func Reasons(fs []Finding) []Reason {
	var out []Reason
	for _, f := range fs {
		if !slices.Contains(out, f.Reason) {
			out = append(out, f.Reason)
		}
	}
	return out
}

// NeedsReissue reports whether fs can only be fixed by issuing a new
// bundle. Two reasons have cheaper fixes and do not count on their own:
// trust-bundle-stale (rewrite ca.crt only, so the leaves and their serials
// stay) and bad-permissions (chmod).
func NeedsReissue(fs []Finding) bool {
	for _, f := range fs {
		if f.Reason != ReasonTrustBundleStale && f.Reason != ReasonBadPermissions {
			return true
		}
	}
	return false
}

// RenewAt returns issuedAt + fraction*lifetime, where issuedAt is NotBefore
// plus the clock-skew backdate and lifetime runs from there to NotAfter. The
// backdate is not lifetime: counting it made a 2-minute leaf (valid from 5
// minutes before issuance) due for renewal the moment it was issued. A
// fraction outside (0, 1] means DefaultRenewFraction. Callers add jitter so
// that leaves issued together are not all renewed in the same second.
func RenewAt(cert *x509.Certificate, fraction float64) time.Time {
	if fraction <= 0 || fraction > 1 {
		fraction = DefaultRenewFraction
	}
	return RenewPoint(cert.NotBefore, cert.NotAfter, fraction)
}

// RenewPoint is RenewAt for a validity window, for any certificate this
// package issued (leaves and CAs are backdated alike by clockSkew).
func RenewPoint(notBefore, notAfter time.Time, fraction float64) time.Time {
	issued := notBefore
	if notAfter.Sub(notBefore) > clockSkew {
		// Our certificates start clockSkew before they are issued; a window
		// shorter than that was not issued by us, and counts whole.
		issued = notBefore.Add(clockSkew)
	}
	return issued.Add(time.Duration(fraction * float64(notAfter.Sub(issued))))
}

// Expectation is what a bundle must satisfy.
type Expectation struct {
	Identity Identity
	// Authority supplies the active CA and trust bundle. Validate reads one
	// consistent snapshot of it. Nil skips wrong-ca, wrong-issuer and
	// trust-bundle-stale.
	Authority *Authority
	// RenewFraction of a leaf's lifetime after which it is renew-due;
	// outside (0, 1] means DefaultRenewFraction.
	RenewFraction float64
	// KeyMode is the expected permission bits of both keys; 0 skips the
	// check. Modes are only compared for bundles read from disk (Generation
	// set) or with a non-zero mode, since 0 also means "not from disk".
	KeyMode fs.FileMode
	// Now is the time to validate at; zero means time.Now().
	Now time.Time
}

// Validate checks b against exp and returns every finding, ordered by the
// Reason constants' order and, within one reason, by file (tls.crt,
// tls.key, client.crt, client.key, ca.crt). Nil or empty means the bundle is
// good. b == nil yields a single missing finding. A file that is missing or
// corrupt is skipped by the later checks that would need it.
//
// Validate is a pure function of its arguments (and of the Authority's
// current state): gather the bundle first, then decide.
func Validate(b *BundleFiles, exp Expectation) []Finding {
	if b == nil {
		return []Finding{{Reason: ReasonMissing, Message: "no bundle"}}
	}
	if exp.Now.IsZero() {
		exp.Now = time.Now()
	}
	active, trust := exp.Authority.snapshot()
	return validate(b, exp, active, trust).findings
}

// validate runs every check of b against exp, with the authority as
// snapshot (active nil: none).
func validate(b *BundleFiles, exp Expectation, active *CA, trust []*x509.Certificate) *validation {
	v := &validation{exp: exp, b: b, active: active, trust: trust}
	v.server = leafState{certFile: FileServerCert, keyFile: FileServerKey, keyMode: b.ServerKeyMode}
	v.client = leafState{certFile: FileClientCert, keyFile: FileClientKey, keyMode: b.ClientKeyMode}
	for _, check := range validationChecks {
		check(v)
	}
	return v
}

// leafState is one leaf (server or client) as far as validation got.
type leafState struct {
	certFile, keyFile string
	cert              *x509.Certificate   // nil if missing or corrupt
	chain             []*x509.Certificate // the certificates after cert in its file
	key               crypto.Signer       // nil if missing or corrupt
	keyMode           fs.FileMode
	signer            *x509.Certificate // the CA that signed cert, on a verified path to a trusted anchor
}

type validation struct {
	exp            Expectation
	b              *BundleFiles
	server, client leafState
	caCerts        []*x509.Certificate // ca.crt; nil if missing or corrupt
	active         *CA                 // nil without an Authority
	trust          []*x509.Certificate
	findings       []Finding
}

func (v *validation) add(r Reason, file, format string, args ...any) {
	v.findings = append(v.findings, Finding{Reason: r, File: file, Message: fmt.Sprintf(format, args...)})
}

func (v *validation) leaves() []*leafState { return []*leafState{&v.server, &v.client} }

// validationChecks run in this order; each appends its findings.
var validationChecks = []func(v *validation){
	checkUnsafe, checkMissing, checkCorrupt, checkKeyMismatch, checkWrongCA, checkWrongIssuer,
	checkSANs, checkUsage, checkExpired, checkNotYetValid, checkRenewDue,
	checkTrustBundle, checkPermissions,
}

// checkUnsafe reports each unsafe file; Unsafe is already in file order.
func checkUnsafe(v *validation) {
	for _, u := range v.b.Unsafe {
		v.add(ReasonUnsafeFile, u.Name, "%s", u)
	}
}

// checkMissing skips unsafe files: they are there, and reported as such.
func checkMissing(v *validation) {
	for _, name := range validateFileOrder {
		if len(v.b.file(name)) == 0 && !slices.ContainsFunc(v.b.Unsafe, func(u UnsafeFile) bool { return u.Name == name }) {
			v.add(ReasonMissing, name, "file is absent or empty")
		}
	}
}

func checkCorrupt(v *validation) {
	for _, l := range v.leaves() {
		if data := v.b.file(l.certFile); len(data) > 0 {
			certs, err := ParseCertificatesPEM(data)
			if err != nil {
				v.add(ReasonCorrupt, l.certFile, "%v", err)
			} else {
				l.cert, l.chain = certs[0], certs[1:]
			}
		}
		if data := v.b.file(l.keyFile); len(data) > 0 {
			key, err := ParsePrivateKeyPEM(data)
			if err != nil {
				v.add(ReasonCorrupt, l.keyFile, "%v", err)
			}
			l.key = key
		}
	}
	if len(v.b.CA) > 0 {
		certs, err := ParseCertificatesPEM(v.b.CA)
		if err != nil {
			v.add(ReasonCorrupt, FileCA, "%v", err)
		}
		v.caCerts = certs
	}
}

func checkKeyMismatch(v *validation) {
	for _, l := range v.leaves() {
		if l.cert != nil && l.key != nil && !publicKeyMatches(l.cert.PublicKey, l.key) {
			v.add(ReasonKeyMismatch, l.keyFile, "key does not belong to %s (serial %s)", l.certFile, SerialString(l.cert.SerialNumber))
		}
	}
}

// checkWrongCA verifies each leaf the way a peer does: to an anchor of the
// trust bundle, through the intermediates its own file carries, and at a
// time inside the leaf's validity (expiry is its own finding). A leaf of an
// intermediate whose file lacks the intermediate is wrong-ca too: a peer
// that trusts only the root cannot verify it, and a reissue writes it
// whole.
func checkWrongCA(v *validation) {
	if v.active == nil {
		return
	}
	roots := x509.NewCertPool()
	for _, c := range v.trust {
		roots.AddCert(c)
	}
	for _, l := range v.leaves() {
		if l.cert == nil {
			continue
		}
		inter := x509.NewCertPool()
		for _, c := range l.chain {
			inter.AddCert(c)
		}
		chains, err := l.cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: insideValidity(l.cert, v.exp.Now),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			v.add(ReasonWrongCA, l.certFile, "got issuer %q, want a chain to one of the trusted CAs %s through the certificates in %s: %v",
				l.cert.Issuer.CommonName, certCommonNames(v.trust), l.certFile, err)
			continue
		}
		// A chain of one is a leaf that is itself a trusted certificate;
		// it names itself as signer, as CheckSignatureFrom would.
		l.signer = chains[0][min(1, len(chains[0])-1)]
		for _, c := range chains {
			if len(c) > 1 && c[1].Equal(v.active.Cert) {
				l.signer = c[1]
			}
		}
	}
}

// insideValidity is now moved into c's validity window, so that verifying
// at it judges the chain and not c's own dates.
func insideValidity(c *x509.Certificate, now time.Time) time.Time {
	switch {
	case now.Before(c.NotBefore):
		return c.NotBefore
	case now.After(c.NotAfter):
		return c.NotAfter
	}
	return now
}

func checkWrongIssuer(v *validation) {
	for _, l := range v.leaves() {
		if l.signer != nil && !l.signer.Equal(v.active.Cert) {
			v.add(ReasonWrongIssuer, l.certFile, "got issuer %q, want the active CA %q",
				l.signer.Subject.CommonName, v.active.Cert.Subject.CommonName)
		}
	}
}

func checkSANs(v *validation) {
	id := v.exp.Identity
	if c := v.server.cert; c != nil {
		var uncovered []string
		for _, name := range id.DNSNames {
			if !coversName(c, name) {
				uncovered = append(uncovered, name)
			}
		}
		if len(uncovered) > 0 {
			v.add(ReasonSANMismatch, FileServerCert, "got DNS SANs %q and IP SANs %v, want also %q", c.DNSNames, c.IPAddresses, uncovered)
		}
	}
	if c := v.client.cert; c != nil {
		want := id.SPIFFEID().String()
		var got []string
		for _, u := range c.URIs {
			got = append(got, u.String())
		}
		if c.Subject.CommonName != id.Service || len(got) != 1 || got[0] != want {
			v.add(ReasonSANMismatch, FileClientCert, "got CN %q and URI SANs %q, want CN %q and URI SAN %q", c.Subject.CommonName, got, id.Service, want)
		}
	}
}

// coversName reports whether c is valid for name: an exact DNS SAN, an IP
// SAN, or a wildcard that x509's own hostname matching accepts.
func coversName(c *x509.Certificate, name string) bool {
	if ip := net.ParseIP(name); ip != nil {
		return slices.ContainsFunc(c.IPAddresses, ip.Equal)
	}
	if slices.ContainsFunc(c.DNSNames, func(n string) bool { return strings.EqualFold(n, name) }) {
		return true
	}
	return c.VerifyHostname(name) == nil
}

func checkUsage(v *validation) {
	for _, l := range v.leaves() {
		want := x509.ExtKeyUsageServerAuth
		if l == &v.client {
			want = x509.ExtKeyUsageClientAuth
		}
		if l.cert != nil && !slices.Contains(l.cert.ExtKeyUsage, want) && !slices.Contains(l.cert.ExtKeyUsage, x509.ExtKeyUsageAny) {
			v.add(ReasonWrongUsage, l.certFile, "got extended key usages %v, want %s", extKeyUsageNames(l.cert.ExtKeyUsage), extKeyUsageNames([]x509.ExtKeyUsage{want}))
		}
	}
}

// extKeyUsageNames spells usages as OpenSSL does, for messages.
func extKeyUsageNames(us []x509.ExtKeyUsage) []string {
	names := make([]string, len(us))
	for i, u := range us {
		switch u {
		case x509.ExtKeyUsageServerAuth:
			names[i] = "serverAuth"
		case x509.ExtKeyUsageClientAuth:
			names[i] = "clientAuth"
		case x509.ExtKeyUsageCodeSigning:
			names[i] = "codeSigning"
		case x509.ExtKeyUsageEmailProtection:
			names[i] = "emailProtection"
		default:
			names[i] = fmt.Sprintf("eku(%d)", u)
		}
	}
	return names
}

func checkExpired(v *validation) {
	for _, l := range v.leaves() {
		if l.cert != nil && v.exp.Now.After(l.cert.NotAfter) {
			v.add(ReasonExpired, l.certFile, "not valid after %s (now %s)", utcStamp(l.cert.NotAfter), utcStamp(v.exp.Now))
		}
	}
}

func checkNotYetValid(v *validation) {
	for _, l := range v.leaves() {
		if l.cert != nil && v.exp.Now.Before(l.cert.NotBefore) {
			v.add(ReasonNotYetValid, l.certFile, "not valid before %s (now %s)", utcStamp(l.cert.NotBefore), utcStamp(v.exp.Now))
		}
	}
}

func checkRenewDue(v *validation) {
	for _, l := range v.leaves() {
		c := l.cert
		if c == nil || v.exp.Now.After(c.NotAfter) || v.exp.Now.Before(c.NotBefore) {
			continue // already reported as expired or not-yet-valid
		}
		if at := RenewAt(c, v.exp.RenewFraction); !v.exp.Now.Before(at) {
			v.add(ReasonRenewDue, l.certFile, "renewal was due at %s (now %s, expires %s)", utcStamp(at), utcStamp(v.exp.Now), utcStamp(c.NotAfter))
		}
	}
}

func checkTrustBundle(v *validation) {
	if v.active == nil || v.caCerts == nil {
		return
	}
	if !sameCertSet(v.caCerts, v.trust) {
		v.add(ReasonTrustBundleStale, FileCA, "got CAs %s, want %s", certCommonNames(v.caCerts), certCommonNames(v.trust))
	}
}

func checkPermissions(v *validation) {
	want := v.exp.KeyMode.Perm()
	if want == 0 {
		return
	}
	for _, l := range v.leaves() {
		got := l.keyMode.Perm()
		fromDisk := v.b.Generation != "" || got != 0
		if fromDisk && len(v.b.file(l.keyFile)) > 0 && got != want {
			v.add(ReasonBadPermissions, l.keyFile, "got mode %#o, want %#o", got, want)
		}
	}
}

// sameCertSet compares two certificate lists as sets: order and duplicates
// in ca.crt do not matter to a TLS peer.
func sameCertSet(a, b []*x509.Certificate) bool {
	set := func(cs []*x509.Certificate) map[string]bool {
		m := make(map[string]bool, len(cs))
		for _, c := range cs {
			m[string(c.Raw)] = true
		}
		return m
	}
	sa, sb := set(a), set(b)
	if len(sa) != len(sb) {
		return false
	}
	for k := range sa {
		if !sb[k] {
			return false
		}
	}
	return true
}

func certCommonNames(certs []*x509.Certificate) string {
	names := make([]string, len(certs))
	for i, c := range certs {
		names[i] = fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return "[" + strings.Join(names, ", ") + "]"
}

func utcStamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
