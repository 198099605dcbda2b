package certs

import "fmt"

// IssueBundleFrom is IssueBundle signed by ca instead of the Active CA, with
// the same trust bundle (TrustBundle) in the CA field.
//
// Added for the CA rollover (issue 6): during the overlap the controller's
// prober presents a client certificate signed by the SUCCESSOR, so a server
// that has not reloaded its new trust bundle refuses it and one that has
// accepts it. That turns "every service trusts the new CA" into something a
// probe proves instead of something assumed. Service bundles are still
// issued by IssueBundle only.
//
// ca must be the Active CA or the Successor: a leaf from any other CA would
// not chain to the trust bundle handed out with it, so that is an error.
func (a *Authority) IssueBundleFrom(ca *CA, id Identity, opts IssueOptions) (*BundleFiles, IssueInfo, error) {
	a.mu.RLock()
	known := ca != nil && (ca == a.active || ca == a.successor ||
		(a.successor != nil && ca.Cert.Equal(a.successor.Cert)) || ca.Cert.Equal(a.active.Cert))
	trust := a.trustCertsLocked()
	a.mu.RUnlock()
	if !known {
		return nil, IssueInfo{}, fmt.Errorf("issuing bundle for %q: the signing CA is neither the active CA nor the successor", id.Service)
	}
	b, info, err := issueBundle(ca, trust, id, opts)
	if err != nil {
		return nil, IssueInfo{}, fmt.Errorf("issuing bundle for %q: %w", id.Service, err)
	}
	return b, info, nil
}
