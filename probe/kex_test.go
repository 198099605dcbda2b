package probe

import (
	"crypto/tls"
	"slices"
	"sync"
	"testing"
)

func TestProbeOffersClassicKeyExchangesOnly(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	var mu sync.Mutex
	var offered [][]tls.CurveID
	port, _ := p.tlsServer(t, withHelloInfo(func(h *tls.ClientHelloInfo) {
		mu.Lock()
		defer mu.Unlock()
		offered = append(offered, slices.Clone(h.SupportedCurves))
	}))
	if res := p.prober().Probe(t.Context(), newTarget(withHTTPS(port))); res.Level != MTLS {
		t.Fatalf("got level %s (%+v), want mtls", res.Level, res.HTTPSWithClientCert)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(offered) != 2 {
		t.Fatalf("ClientHellos: got %d, want 2 (with and without our certificate)", len(offered))
	}
	for _, c := range offered {
		if !slices.Equal(c, curves) {
			t.Errorf("key exchanges offered: got %v, want %v", c, curves)
		}
	}
}

// A server that takes P-256 only asks again for it (HelloRetryRequest),
// and the probe still measures mTLS.
func TestProbeMeetsAServerWithoutX25519(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	port, _ := p.tlsServer(t, withCurves(tls.CurveP256))
	if res := p.prober().Probe(t.Context(), newTarget(withHTTPS(port))); res.Level != MTLS {
		t.Fatalf("got level %s (%+v), want mtls", res.Level, res.HTTPSWithClientCert)
	}
}
