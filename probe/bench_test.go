package probe

import "testing"

// BenchmarkProbeMTLS measures whole probes against a local mTLS server: two
// fresh handshakes each (with our certificate, then refused without).
func BenchmarkProbeMTLS(b *testing.B) {
	p := newPKI(b)
	port, _ := p.tlsServer(b)
	pr := p.prober()
	target := newTarget(withHTTPS(port))
	for b.Loop() {
		if res := pr.Probe(b.Context(), target); res.Level != MTLS {
			b.Fatalf("got level %s (%+v), want %s", res.Level, res.HTTPSWithClientCert, MTLS)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "probes/s")
}
