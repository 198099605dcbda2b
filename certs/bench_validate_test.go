package certs

import (
	"testing"
	"time"
)

// BenchmarkValidate is one reconcile's judgement of a good bundle: every
// leaf verified to the trust bundle through its chain.
func BenchmarkValidate(b *testing.B) {
	ca, err := NewCA("bench CA", ECDSAP256, 24*time.Hour, t0)
	if err != nil {
		b.Fatal(err)
	}
	a := memAuthority(ca, nil)
	id := Identity{Service: "web", DNSNames: []string{"web", "localhost"}}
	bundle, _, err := a.IssueBundle(id, IssueOptions{Now: t0})
	if err != nil {
		b.Fatal(err)
	}
	exp := Expectation{Identity: id, Authority: a, Now: t0}
	b.ReportAllocs()
	for b.Loop() {
		if fs := Validate(bundle, exp); len(fs) != 0 {
			b.Fatalf("got findings %v, want none", fs)
		}
	}
}
