package certs

import (
	"testing"
	"time"
)

// BenchmarkIssueBundle measures one server+client pair per operation,
// signed by the default ECDSA P-256 CA, for each leaf algorithm, and
// reports bundles/s. `make bench` compares it with scripts/bench-openssl.sh,
// which does the same work with the openssl CLI.
func BenchmarkIssueBundle(b *testing.B) {
	ca, err := NewCA("bench CA", ECDSAP256, 24*time.Hour, t0)
	if err != nil {
		b.Fatal(err)
	}
	a := memAuthority(ca, nil)
	id := Identity{Service: "web", DNSNames: []string{"web", "web.crank_default", "localhost"}}
	for _, alg := range []KeyAlgorithm{ECDSAP256, RSA2048, Ed25519} {
		b.Run(string(alg), func(b *testing.B) {
			opts := IssueOptions{KeyAlgorithm: alg, Now: t0}
			n := 0
			for b.Loop() {
				if _, _, err := a.IssueBundle(id, opts); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "bundles/s")
		})
	}
}
