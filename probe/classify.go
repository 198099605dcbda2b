package probe

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// observation is what one step gathered, before any judgement.
type observation struct {
	Step
	connected       bool                // a TCP connection was accepted
	serverSpoke     bool                // the server sent something during the TLS handshake
	handshakeFailed bool                // the TLS handshake returned an error
	verified        bool                // the server certificate verified
	certs           []*x509.Certificate // the verified served chain
	err             error               // why the step is not OK
}

// observations are the three steps of one probe; a step that did not run is
// the zero observation.
type observations struct {
	withCert, withoutCert, http observation
}

// served returns the served chain: the verified one, or the one a failed
// verification reported.
func (o observation) served() []*x509.Certificate {
	if len(o.certs) > 0 {
		return o.certs
	}
	if cve, ok := errors.AsType[*tls.CertificateVerificationError](o.err); ok {
		return cve.UnverifiedCertificates
	}
	return nil
}

// leaf is the served leaf certificate, or nil.
func (o observation) leaf() *x509.Certificate {
	if c := o.served(); len(c) > 0 {
		return c[0]
	}
	return nil
}

// tlsAnswered reports whether something on the HTTPS port answered the
// handshake: a certificate, an alert, a ServerHello we refused, or something
// that is not TLS. A refused, reset or silent connection did not.
func (o observation) tlsAnswered() bool {
	return o.OK || o.serverSpoke
}

// acceptedWithoutCert: the server answered a certificate-less client with
// anything but 401/403, which we count as the application enforcing client
// auth itself.
func acceptedWithoutCert(o observation) bool {
	return o.OK && o.Status != 401 && o.Status != 403
}

func is2xx(status int) bool { return status >= 200 && status < 300 }

// decide classifies a probe: a pure function of what was observed.
//
//   - mtls: (1) worked and (2) was refused;
//   - tls: (1) worked and (2) was accepted (client-auth-not-enforced);
//   - plain: (1) did not work, but HTTP answered or the HTTPS port answered
//     the handshake. A certificate that fails verification is not TLS: a
//     verifying client cannot use it, so the service offers no verifiable
//     security; the findings say why;
//   - down: nothing answered.
func decide(t Target, obs observations, roots *x509.CertPool, now time.Time) (Level, []Finding) {
	s1, s2, s3 := obs.withCert, obs.withoutCert, obs.http
	var fs []Finding
	add := func(r Reason, format string, args ...any) {
		fs = append(fs, Finding{Reason: r, Message: fmt.Sprintf(format, args...)})
	}
	level := Down
	switch {
	case s1.OK && acceptedWithoutCert(s2):
		level = TLS
		add(ClientAuthNotEnforced, "HTTPS on %s served a client without a certificate (HTTP %d)", s2.Addr, s2.Status)
	case s1.OK:
		level = MTLS
	case s1.tlsAnswered() || s3.OK:
		level = Plain
	}
	if s1.Attempted && !s1.OK {
		fs = append(fs, httpsFailure(t, s1, roots, now)...)
	}
	if leaf := s1.leaf(); leaf != nil && t.ExpectedFingerprint != "" && !strings.EqualFold(Fingerprint(leaf), t.ExpectedFingerprint) {
		add(ServedCertNotCurrent, "served certificate %s is not the one on disk %s (serial %X, not after %s): the process has not reloaded",
			short(Fingerprint(leaf)), short(t.ExpectedFingerprint), leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if (level == TLS || level == MTLS) && s3.OK {
		add(HTTPAlsoOpen, "plain HTTP on %s answered %d next to working HTTPS", s3.Addr, s3.Status)
	}
	switch {
	case s1.OK && !is2xx(s1.Status):
		add(HealthNotOK, "HTTPS GET %s on %s returned %d", t.HealthPath, s1.Addr, s1.Status)
	case !s1.OK && level == Plain && s3.OK && !is2xx(s3.Status):
		add(HealthNotOK, "HTTP GET %s on %s returned %d", t.HealthPath, s3.Addr, s3.Status)
	}
	slices.SortStableFunc(fs, func(a, b Finding) int {
		return slices.Index(reasonOrder, a.Reason) - slices.Index(reasonOrder, b.Reason)
	})
	return level, fs
}

// httpsFailure says why the HTTPS step with our client certificate failed.
// Any failed handshake gets a finding; a port that refused the connection
// says nothing beyond the Step's error.
func httpsFailure(t Target, o observation, roots *x509.CertPool, now time.Time) []Finding {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](o.err); ok {
		return certFindings(o.err, o.served(), t.Service, roots, now)
	}
	switch _, notTLS := errors.AsType[tls.RecordHeaderError](o.err); {
	case o.verified && remoteAlert(o.err):
		return []Finding{{ClientCertRejected, fmt.Sprintf("server on %s refused our client certificate: %v", o.Addr, o.err)}}
	case o.verified:
		return []Finding{{HealthNotOK, fmt.Sprintf("no HTTP response on %s after a verified TLS handshake: %v", o.Addr, o.err)}}
	case notTLS:
		return []Finding{{NotTLS, fmt.Sprintf("HTTPS port %s answered, but not with TLS", o.Addr)}}
	case o.handshakeFailed:
		return []Finding{handshakeFinding(o)}
	}
	return nil
}

// certFindings classifies a served chain that failed verification. The
// verifier stops at its first complaint (validity, then name, then chain),
// so after taking its verdict we re-check the other two on their own: an
// expired, foreign certificate reports both.
func certFindings(verr error, chain []*x509.Certificate, service string, roots *x509.CertPool, now time.Time) []Finding {
	var fs []Finding
	add := func(r Reason, msg string) {
		if !slices.ContainsFunc(fs, func(f Finding) bool { return f.Reason == r }) {
			fs = append(fs, Finding{Reason: r, Message: msg})
		}
	}
	inv, isInv := errors.AsType[x509.CertificateInvalidError](verr)
	host, isHost := errors.AsType[x509.HostnameError](verr)
	ua, isUA := errors.AsType[x509.UnknownAuthorityError](verr)
	switch {
	case isInv && inv.Reason == x509.Expired:
		add(ExpiredServedCert, validityMessage(inv.Cert, now))
	case isHost:
		add(SANMismatch, "served certificate does not name "+service+": "+host.Error())
	case isUA:
		add(UntrustedServerCert, "served certificate does not chain to our CA: "+ua.Error())
	default:
		// Anything else a verifying client refuses (wrong key usage, a chain
		// it cannot build) makes the certificate as useless as a foreign one.
		add(UntrustedServerCert, "served certificate does not verify: "+verr.Error())
	}
	if len(chain) == 0 {
		return fs
	}
	leaf := chain[0]
	if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		add(ExpiredServedCert, validityMessage(leaf, now))
	}
	if err := leaf.VerifyHostname(service); err != nil {
		add(SANMismatch, "served certificate does not name "+service+": "+err.Error())
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	// Verify at a time inside the leaf's validity, so that only the chain
	// is judged here.
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	} else if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: at}); err != nil {
		add(UntrustedServerCert, "served certificate does not chain to our CA: "+err.Error())
	}
	return fs
}

// validityMessage says whether c is expired or not yet valid at now; Go's
// verifier calls both "expired".
func validityMessage(c *x509.Certificate, now time.Time) string {
	const f = time.RFC3339
	if c == nil {
		return "served certificate chain is expired or not yet valid"
	}
	what := "served certificate"
	if c.IsCA {
		what = "CA certificate " + c.Subject.CommonName + " in the served chain"
	}
	if now.Before(c.NotBefore) {
		return fmt.Sprintf("%s is not yet valid: valid from %s, now %s (clock skew?)", what, c.NotBefore.UTC().Format(f), now.UTC().Format(f))
	}
	return fmt.Sprintf("%s expired at %s, now %s", what, c.NotAfter.UTC().Format(f), now.UTC().Format(f))
}

// Fingerprint returns the hex SHA-256 of cert's DER encoding, the form
// `openssl x509 -fingerprint -sha256` prints without colons; "" for nil.
func Fingerprint(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	sum := sha256.Sum256(cert.Raw)
	return hex.EncodeToString(sum[:])
}

// short abbreviates a fingerprint for messages.
func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16] + "..."
	}
	return fp
}
