package certs

import (
	"crypto/x509"
	"strings"
	"testing"
	"time"
)

// Tests for IssueBundleFrom (issue 6, CA rollover).

func TestIssueBundleFrom(t *testing.T) {
	t.Parallel()
	old, next, stranger := fixtureCA(t, withCACommonName("old")), fixtureCA(t, withCACommonName("next")), fixtureCA(t, withCACommonName("stranger"))
	a := memAuthority(old, next)
	tests := map[string]struct {
		ca       *CA
		wantErr  bool   // whether issuance must be refused
		wantFrom string // CN of the CA the client leaf must be signed by
	}{
		"should sign with the successor during an overlap":               {ca: next, wantFrom: "next"},
		"should sign with the active CA like IssueBundle":                {ca: old, wantFrom: "old"},
		"should refuse a CA that is neither the active CA nor successor": {ca: stranger, wantErr: true},
		"should refuse a nil CA":                                         {ca: nil, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b, _, err := a.IssueBundleFrom(tc.ca, webIdentity, IssueOptions{Now: t0})
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error=%v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			client := verifyLeaf(t, b.ClientCert, b.CA, x509.ExtKeyUsageClientAuth, "")
			if got := client.Issuer.CommonName; got != tc.wantFrom {
				t.Errorf("got client leaf issued by %q, want %q", got, tc.wantFrom)
			}
			if got := strings.Count(string(b.CA), "BEGIN CERTIFICATE"); got != 2 {
				t.Errorf("got %d CAs in the trust bundle, want 2 (old and successor)", got)
			}
		})
	}
}

// TestInteropOverlapBeforePromote is the overlap as the rotator runs it:
// the successor exists but does not issue yet. The prober's client
// certificate comes from the successor, so a server still holding the
// pre-rollover trust bundle refuses it (the probe finds
// client-cert-rejected) and one that reloaded the overlap bundle accepts
// it; old-CA and new-CA leaves reach each other in both directions.
func TestInteropOverlapBeforePromote(t *testing.T) {
	t.Parallel()
	a, _, err := OpenAuthority(t.TempDir(), AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Service: "web", DNSNames: []string{"web", "localhost"}}
	oldBundle, _, err := a.IssueBundle(id, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	preRollover := oldBundle.CA
	next, err := a.CreateSuccessor(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	probeCreds, _, err := a.IssueBundleFrom(next, Identity{Service: "crank-mtls-controller", DNSNames: []string{"crank-mtls-controller"}}, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	newBundle, _, err := a.IssueBundleFrom(next, id, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	overlap := a.TrustBundle()
	tests := map[string]struct {
		server, client           *BundleFiles
		serverTrust, clientTrust []byte
		wantOK                   bool // whether the mTLS request must succeed
	}{
		"should refuse the successor's client cert at a server that has not reloaded": {
			server: oldBundle, client: probeCreds, serverTrust: preRollover, clientTrust: overlap},
		"should accept the successor's client cert at a server that reloaded the overlap bundle": {
			server: oldBundle, client: probeCreds, serverTrust: overlap, clientTrust: overlap, wantOK: true},
		"should let an old-CA client reach a new-CA server when both trust the overlap bundle": {
			server: newBundle, client: oldBundle, serverTrust: overlap, clientTrust: overlap, wantOK: true},
		"should let a new-CA client reach an old-CA server when both trust the overlap bundle": {
			server: oldBundle, client: newBundle, serverTrust: overlap, clientTrust: overlap, wantOK: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startMTLSServer(t, tc.server, tc.serverTrust)
			_, err := mtlsGet(t, srv, tc.client, tc.clientTrust)
			if (err == nil) != tc.wantOK {
				t.Errorf("got error %v, want success=%v", err, tc.wantOK)
			}
		})
	}
}
