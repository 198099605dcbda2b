package probe

import (
	"crypto/tls"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

func TestProbeClassifies(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	foreign := newPKI(t)
	type setup func(t *testing.T) Target
	tests := map[string]struct {
		target setup
		clock  func() time.Time // zero: time.Now
		// wantLevel and wantReasons: the Result's Level and Reasons(), in order.
		wantLevel   Level
		wantReasons []Reason
		// wantMessage, if set, must appear in one of the findings' messages.
		wantMessage string
	}{
		"should report mtls when the server requires and verifies client certificates": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				return newTarget(withHTTPS(port))
			},
			wantLevel: MTLS,
		},
		"should report tls and client-auth-not-enforced for a theater server that accepts any client": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withClientAuth(tls.NoClientCert))
				return newTarget(withHTTPS(port))
			},
			wantLevel: TLS, wantReasons: []Reason{ClientAuthNotEnforced},
		},
		"should count an app-level 401 without a certificate as enforced client auth": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withClientAuth(tls.VerifyClientCertIfGiven), withHandler(http.HandlerFunc(
					func(w http.ResponseWriter, r *http.Request) {
						if len(r.TLS.PeerCertificates) == 0 {
							w.WriteHeader(http.StatusUnauthorized)
						}
					})))
				return newTarget(withHTTPS(port))
			},
			wantLevel: MTLS,
		},
		"should report plain and untrusted-server-cert for a certificate from a foreign CA": {
			target: func(t *testing.T) Target {
				c, _ := foreign.serverCert(t, []string{testService}, certs.IssueOptions{})
				port, _ := p.tlsServer(t, withCert(c), withClientAuth(tls.NoClientCert))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{UntrustedServerCert},
		},
		"should report untrusted-server-cert and san-mismatch for a self-signed certificate without SANs": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withCert(selfSigned(t)), withClientAuth(tls.NoClientCert))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{UntrustedServerCert, SANMismatch},
		},
		"should report san-mismatch when the served certificate lacks the service name": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withNames("other-service", "localhost"))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{SANMismatch},
		},
		"should report expired-served-cert for an expired certificate": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withIssue(certs.IssueOptions{Now: time.Now().Add(-3 * time.Hour), Lifetime: time.Hour}))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{ExpiredServedCert}, wantMessage: "served certificate expired at",
		},
		"should report expired-served-cert for a certificate not yet valid by the prober's clock": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				return newTarget(withHTTPS(port))
			},
			clock:     func() time.Time { return time.Now().Add(-time.Hour) },
			wantLevel: Plain, wantReasons: []Reason{ExpiredServedCert}, wantMessage: "not yet valid",
		},
		"should report client-cert-rejected when the server does not trust our CA": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withClientCAs(foreign.roots))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{ClientCertRejected}, wantMessage: "refused our client certificate",
		},
		"should report client-cert-rejected over TLS 1.2, where the refusal ends the handshake": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withClientCAs(foreign.roots), withMaxVersion(tls.VersionTLS12))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{ClientCertRejected},
		},
		"should report mtls over TLS 1.2": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withMaxVersion(tls.VersionTLS12))
				return newTarget(withHTTPS(port))
			},
			wantLevel: MTLS,
		},
		"should report plain for a service that answers plain HTTP only": {
			target: func(t *testing.T) Target {
				return newTarget(withHTTP(plainServer(t, okHandler)))
			},
			wantLevel: Plain,
		},
		"should report plain when the HTTPS port is closed but HTTP answers": {
			target: func(t *testing.T) Target {
				return newTarget(withHTTPS(closedPort(t)), withHTTP(plainServer(t, okHandler)))
			},
			wantLevel: Plain,
		},
		"should report plain without http-also-open when HTTPS does not verify and HTTP answers": {
			target: func(t *testing.T) Target {
				c, _ := foreign.serverCert(t, []string{testService}, certs.IssueOptions{})
				port, _ := p.tlsServer(t, withCert(c))
				return newTarget(withHTTPS(port), withHTTP(plainServer(t, okHandler)))
			},
			wantLevel: Plain, wantReasons: []Reason{UntrustedServerCert},
		},
		"should report not-tls when the HTTPS port speaks plain HTTP": {
			target: func(t *testing.T) Target {
				return newTarget(withHTTPS(plainServer(t, okHandler)))
			},
			wantLevel: Plain, wantReasons: []Reason{NotTLS},
		},
		"should report down when nothing listens": {
			target: func(t *testing.T) Target {
				return newTarget(withHTTPS(closedPort(t)), withHTTP(closedPort(t)))
			},
			wantLevel: Down,
		},
		"should report mtls and http-also-open when plain HTTP answers next to mTLS": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				return newTarget(withHTTPS(port), withHTTP(plainServer(t, okHandler)))
			},
			wantLevel: MTLS, wantReasons: []Reason{HTTPAlsoOpen},
		},
		"should report served-cert-not-current when the served leaf is not the one on disk": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				_, onDisk := p.serverCert(t, []string{testService}, certs.IssueOptions{})
				return newTarget(withHTTPS(port), withExpected(Fingerprint(onDisk)))
			},
			wantLevel: MTLS, wantReasons: []Reason{ServedCertNotCurrent},
		},
		"should accept an upper-case expected fingerprint of the served leaf": {
			target: func(t *testing.T) Target {
				port, leaf := p.tlsServer(t)
				return newTarget(withHTTPS(port), withExpected(strings.ToUpper(Fingerprint(leaf))))
			},
			wantLevel: MTLS,
		},
		"should report health-not-ok when the health path answers 503 over mTLS": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withStatus(http.StatusServiceUnavailable))
				return newTarget(withHTTPS(port))
			},
			wantLevel: MTLS, wantReasons: []Reason{HealthNotOK},
		},
		"should report health-not-ok when a plain service answers 500": {
			target: func(t *testing.T) Target {
				return newTarget(withHTTP(plainServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
					w.WriteHeader(http.StatusInternalServerError)
				}))))
			},
			wantLevel: Plain, wantReasons: []Reason{HealthNotOK},
		},
		"should try the addresses in order and use the first that answers": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				// 127.0.0.2 is loopback too, but the server is bound to 127.0.0.1 only.
				return newTarget(withHTTPS(port), withAddrs("127.0.0.2", "127.0.0.1"))
			},
			wantLevel: MTLS,
		},
		"should refuse a hostname instead of resolving it": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				return newTarget(withHTTPS(port), withAddrs("localhost"))
			},
			wantLevel: Down, wantReasons: []Reason{InvalidTarget},
		},
		"should refuse the unspecified address, which would reach the controller's own host": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				return newTarget(withHTTPS(port), withAddrs("0.0.0.0"))
			},
			wantLevel: Down, wantReasons: []Reason{InvalidTarget},
		},
		"should report every problem of an expired certificate from a foreign CA, not just the first": {
			target: func(t *testing.T) Target {
				c, _ := foreign.serverCert(t, []string{testService}, certs.IssueOptions{Now: time.Now().Add(-3 * time.Hour), Lifetime: time.Hour})
				port, _ := p.tlsServer(t, withCert(c))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{UntrustedServerCert, ExpiredServedCert},
		},
		"should report mtls for an h2-only service that requires client certificates": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withH2Only())
				return newTarget(withHTTPS(port))
			},
			wantLevel: MTLS,
		},
		"should report tls and client-auth-not-enforced for an h2-only service that accepts any client": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withH2Only(), withClientAuth(tls.NoClientCert))
				return newTarget(withHTTPS(port))
			},
			wantLevel: TLS, wantReasons: []Reason{ClientAuthNotEnforced},
		},
		"should count an app-level 401 over HTTP/2 as enforced client auth": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withH2Only(), withClientAuth(tls.VerifyClientCertIfGiven), withHandler(http.HandlerFunc(
					func(w http.ResponseWriter, r *http.Request) {
						if len(r.TLS.PeerCertificates) == 0 {
							w.WriteHeader(http.StatusUnauthorized)
						}
					})))
				return newTarget(withHTTPS(port))
			},
			wantLevel: MTLS,
		},
		"should speak HTTP/2 when the server offers both h2 and http/1.1": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withNextProtos("h2", "http/1.1"), withHandler(http2Only))
				return newTarget(withHTTPS(port))
			},
			wantLevel: MTLS,
		},
		"should report tls-version-unsupported with the cause for a server that speaks only TLS 1.1": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withMinVersion(tls.VersionTLS10), withMaxVersion(tls.VersionTLS11))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{TLSVersionUnsupported}, wantMessage: "TLS 1.2 is the minimum",
		},
		"should name the version an old server picks without knowing supported_versions": {
			target: func(t *testing.T) Target {
				return newTarget(withHTTPS(rawServer(t, oldServerHello(tls.VersionTLS11))))
			},
			wantLevel: Plain, wantReasons: []Reason{TLSVersionUnsupported}, wantMessage: "offers only TLS 1.1; TLS 1.2 is the minimum",
		},
		"should report tls-handshake-failed when the server's ALPN list has nothing in common with ours": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t, withNextProtos("acme-tls/1"))
				return newTarget(withHTTPS(port))
			},
			wantLevel: Plain, wantReasons: []Reason{TLSHandshakeFailed}, wantMessage: "application protocols",
		},
		"should report tls-handshake-failed when the HTTPS port hangs up at the ClientHello and HTTP answers": {
			target: func(t *testing.T) Target {
				return newTarget(withHTTPS(rawServer(t, hangUpAtHello)), withHTTP(plainServer(t, okHandler)))
			},
			wantLevel: Plain, wantReasons: []Reason{TLSHandshakeFailed},
		},
		"should refuse a port out of range": {
			target:    func(t *testing.T) Target { return newTarget(withHTTPS(70000)) },
			wantLevel: Down, wantReasons: []Reason{InvalidTarget},
		},
		"should report no-ports when there is nothing to probe": {
			target:    func(t *testing.T) Target { return newTarget() },
			wantLevel: Down, wantReasons: []Reason{NoPorts},
		},
		"should report no-addresses when the container shares no network with us": {
			target: func(t *testing.T) Target {
				port, _ := p.tlsServer(t)
				return newTarget(withHTTPS(port), withAddrs())
			},
			wantLevel: Down, wantReasons: []Reason{NoAddresses},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			target := tc.target(t)
			res := p.prober(withClock(tc.clock)).Probe(t.Context(), target)
			if res.Level != tc.wantLevel || !slices.Equal(res.Reasons(), tc.wantReasons) {
				t.Errorf("got level %s reasons %s, want %s %s\nfindings: %+v\nsteps: %+v / %+v / %+v",
					res.Level, reasonsString(res.Reasons()), tc.wantLevel, reasonsString(tc.wantReasons),
					res.Findings, res.HTTPSWithClientCert, res.HTTPSWithoutClientCert, res.HTTP)
			}
			if tc.wantMessage != "" && !slices.ContainsFunc(res.Findings, func(f Finding) bool { return strings.Contains(f.Message, tc.wantMessage) }) {
				t.Errorf("got findings %+v, want a message containing %q", res.Findings, tc.wantMessage)
			}
			t.Logf("findings: %+v", res.Findings)
		})
	}
}

// http2Only answers 505 to anything but HTTP/2, so a probe that settles for
// HTTP/1.1 where HTTP/2 was on offer shows up as health-not-ok.
var http2Only = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	if r.ProtoMajor != 2 {
		w.WriteHeader(http.StatusHTTPVersionNotSupported)
	}
})
