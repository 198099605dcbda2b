package swarm

import (
	"fmt"
	"slices"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// BundleInputs is what DecideBundle needs: the newest complete generation
// and what a bundle must be now.
type BundleInputs struct {
	Latest *Generation // nil: none yet
	// Wanted is the identity the service needs (SANs from its names).
	Wanted certs.Identity
	// ActiveCA is the SHA-256 of the issuing CA; Trust those of every CA
	// a trust bundle must hold now (during a rollover, old and new).
	ActiveCA string
	Trust    []string
	Owner    string // the claimant key the identity belongs to
	Now      time.Time
}

// bundleCheck is one reason to issue a new generation, in the style of
// cert-manager's policy chain: it returns the reason and a message when
// it fails.
type bundleCheck func(in BundleInputs, m *Manifest) (certs.Reason, string, bool)

// bundleChecks run in order; the first that fails names the reason. The
// reason codes are the compose mode's validation reasons, so metrics and
// status speak one language.
var bundleChecks = []bundleCheck{checkIssuer, checkExpired, checkSANs, checkRenewDue, checkTrust}

// DecideBundle says whether a new generation must be issued and why.
// Pure; see bundle_test.go.
func DecideBundle(in BundleInputs) (issue bool, reason certs.Reason, msg string) {
	if in.Latest == nil {
		return true, certs.ReasonMissing, "no complete bundle generation yet"
	}
	m := in.Latest.Manifest
	for _, check := range bundleChecks {
		if r, msg, failed := check(in, m); failed {
			return true, r, msg
		}
	}
	return false, "", ""
}

func checkIssuer(in BundleInputs, m *Manifest) (certs.Reason, string, bool) {
	if m.Issuer == in.ActiveCA && m.ServerFingerprint != "" {
		return "", "", false
	}
	return certs.ReasonWrongIssuer, fmt.Sprintf("generation %d was issued by CA %s, the issuing CA is %s", in.Latest.N, short(m.Issuer), short(in.ActiveCA)), true
}

func checkExpired(in BundleInputs, m *Manifest) (certs.Reason, string, bool) {
	if in.Now.Before(m.NotAfter) {
		return "", "", false
	}
	return certs.ReasonExpired, fmt.Sprintf("generation %d expired at %s", in.Latest.N, formatTime(m.NotAfter)), true
}

func checkSANs(in BundleInputs, m *Manifest) (certs.Reason, string, bool) {
	for _, n := range in.Wanted.DNSNames {
		if !slices.Contains(m.DNSNames, n) {
			return certs.ReasonSANMismatch, fmt.Sprintf("generation %d lacks the name %s", in.Latest.N, n), true
		}
	}
	return "", "", false
}

func checkRenewDue(in BundleInputs, m *Manifest) (certs.Reason, string, bool) {
	if m.RenewAt.IsZero() || in.Now.Before(m.RenewAt) {
		return "", "", false
	}
	return certs.ReasonRenewDue, fmt.Sprintf("generation %d was due for renewal at %s", in.Latest.N, formatTime(m.RenewAt)), true
}

func checkTrust(in BundleInputs, m *Manifest) (certs.Reason, string, bool) {
	want := slices.Clone(in.Trust)
	slices.Sort(want)
	if slices.Equal(m.Trust, want) {
		return "", "", false
	}
	return certs.ReasonTrustBundleStale, fmt.Sprintf("generation %d trusts %d CA(s), the trust bundle now holds %d", in.Latest.N, len(m.Trust), len(want)), true
}

// short is a fingerprint's first 12 hex digits, for messages.
func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	if fp == "" {
		return "(unknown)"
	}
	return fp
}

// fingerprints returns the SHA-256 of each certificate in a PEM bundle.
func fingerprints(pemData []byte) ([]string, error) {
	cs, err := certs.ParseCertificatesPEM(pemData)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, probe.Fingerprint(c))
	}
	slices.Sort(out)
	return out, nil
}
