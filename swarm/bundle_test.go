package swarm

import (
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

func TestDecideBundle(t *testing.T) {
	t.Parallel()
	wanted := certs.Identity{Service: "web", DNSNames: []string{"web", "localhost"}}
	tests := map[string]struct {
		latest    *Generation // nil: none yet
		active    string      // the issuing CA; default caOld
		trust     []string    // default [caOld]
		now       time.Time   // default t0
		wantIssue bool        // a new generation is due
		want      certs.Reason
	}{
		"should issue the first generation":                        {wantIssue: true, want: certs.ReasonMissing},
		"should keep a current generation":                         {latest: ptr(gen(1))},
		"should reissue when another CA issues now":                {latest: ptr(gen(1)), active: caNew, trust: []string{caOld, caNew}, wantIssue: true, want: certs.ReasonWrongIssuer},
		"should reissue an expired generation":                     {latest: ptr(gen(1)), now: t0.Add(3 * time.Hour), wantIssue: true, want: certs.ReasonExpired},
		"should reissue when a name peers use is missing":          {latest: ptr(gen(1, manifest(func(m *Manifest) { m.DNSNames = []string{"web"} }))), wantIssue: true, want: certs.ReasonSANMismatch},
		"should renew once the renewal time passed":                {latest: ptr(gen(1)), now: t0.Add(time.Hour), wantIssue: true, want: certs.ReasonRenewDue},
		"should reissue when the trust bundle gained a CA":         {latest: ptr(gen(1)), trust: []string{caNew, caOld}, wantIssue: true, want: certs.ReasonTrustBundleStale},
		"should reissue a manifest whose facts do not parse":       {latest: ptr(gen(1, manifest(func(m *Manifest) { m.ServerFingerprint = "" }))), wantIssue: true, want: certs.ReasonWrongIssuer},
		"should name the issuer before the renewal when both hold": {latest: ptr(gen(1)), active: caNew, now: t0.Add(time.Hour), wantIssue: true, want: certs.ReasonWrongIssuer},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			in := BundleInputs{Latest: tc.latest, Wanted: wanted, ActiveCA: caOld, Trust: []string{caOld}, Now: t0}
			if tc.active != "" {
				in.ActiveCA = tc.active
			}
			if tc.trust != nil {
				in.Trust = tc.trust
			}
			if !tc.now.IsZero() {
				in.Now = tc.now
			}
			issue, reason, msg := DecideBundle(in)
			if issue != tc.wantIssue || reason != tc.want {
				t.Errorf("got issue=%v reason %q (%s), want issue=%v reason %q", issue, reason, msg, tc.wantIssue, tc.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
