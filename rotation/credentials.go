package rotation

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// CredentialSetter is the prober as the rotator uses it.
type CredentialSetter interface {
	SetCredentials(cert tls.Certificate, roots *x509.CertPool)
}

// proberCreds is the prober certificate the rotator last handed out.
type proberCreds struct {
	key     string    // signer fingerprint + trust bundle digest
	signer  string    // fingerprint of the signing CA
	renewAt time.Time // 2/3 of its lifetime
	since   time.Time // when it was set
}

// ensureCredentials gives the prober a client certificate from the CA the
// phase wants (the successor during the overlap, the active CA otherwise)
// and the current trust pool, issuing a new one when the signer or the
// trust bundle changed or the certificate is due for renewal. The
// certificate lives only in memory.
func (r *Rotator) ensureCredentials(phase Phase, now time.Time) error {
	if r.Prober == nil {
		return nil
	}
	a := r.Authority
	signer := a.Active()
	if next := a.Successor(); phase == PhaseOverlap && next != nil {
		signer = next
	}
	trust := sha256.Sum256(a.TrustBundle())
	key := fingerprint(signer.Cert) + "/" + hex.EncodeToString(trust[:])
	r.mu.Lock()
	current := r.creds
	r.mu.Unlock()
	if key == current.key && now.Before(current.renewAt) {
		return nil
	}
	opts := r.Issue
	opts.Now = now
	b, _, err := a.IssueBundleFrom(signer, r.proberIdentity(), opts)
	if err != nil {
		return fmt.Errorf("issuing the prober's client certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(b.ClientCert, b.ClientKey)
	if err != nil {
		return fmt.Errorf("loading the prober's client certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return fmt.Errorf("parsing the prober's client certificate: %w", err)
	}
	r.Prober.SetCredentials(cert, a.TrustPool())
	// Taken after the swap: a probe recorded at or after this time started
	// with these credentials (a probe reads them when it starts). A plain
	// renewal by the same signer keeps the old time: the overlap's evidence
	// (probes with the successor's certificate) stays valid.
	since := r.now()
	r.mu.Lock()
	if current.signer == fingerprint(signer.Cert) && !current.since.IsZero() {
		since = current.since
	}
	r.creds = proberCreds{key: key, signer: fingerprint(signer.Cert), renewAt: certs.RenewAt(leaf, certs.DefaultRenewFraction), since: since}
	r.mu.Unlock()
	return nil
}

// PrimeCredentials gives the prober its client certificate before the
// first probe: the one the persisted phase wants (the successor's during an
// overlap, so a controller restarted mid-rollover keeps testing trust in
// the new CA). Step keeps it current from then on.
func (r *Rotator) PrimeCredentials() error {
	phase := PhaseIdle
	if meta, err := r.loadMeta(); err == nil {
		phase = meta.Phase
	}
	return r.ensureCredentials(phase, r.now())
}

// credsSince is when the prober started presenting the successor's
// certificate, zero when it does not (outside the overlap).
func (r *Rotator) credsSince(phase Phase) time.Time {
	next := r.Authority.Successor()
	if phase != PhaseOverlap || next == nil {
		return time.Time{}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.creds.signer != fingerprint(next.Cert) {
		return time.Time{}
	}
	return r.creds.since
}

func (r *Rotator) proberIdentity() certs.Identity {
	id := r.ProberIdentity
	if id.Service == "" {
		id.Service = "crank-mtls-controller"
	}
	if len(id.DNSNames) == 0 {
		id.DNSNames = []string{id.Service}
	}
	return id
}
