package servicekit

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"weak"
)

// ClientConfig returns a config for one connection to serverName: it
// trusts the current ca.crt and presents the client certificate current
// at the handshake. RootCAs cannot change inside a tls.Config, so build a
// config per connection, as DialTLSContext does. In production, a missing
// client pair is an error wrapping ErrNoClientCert; in development the
// config presents none and the peer decides. Without ca.crt it is an
// error wrapping ErrNoTrustBundle: the kit never skips verification.
func (s *Source) ClientConfig(serverName string) (*tls.Config, error) {
	m := s.Current()
	if m.Roots == nil {
		return nil, ErrNoTrustBundle
	}
	if m.Client == nil && s.cfg.Environment == Production {
		return nil, fmt.Errorf("%s: %w", s.cfg.Environment, ErrNoClientCert)
	}
	return &tls.Config{RootCAs: m.Roots, ServerName: serverName, GetClientCertificate: s.clientCert}, nil
}

// clientCert presents the newest client pair, even to a handshake whose
// config was built before a swap; no pair means no certificate.
func (s *Source) clientCert(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	if c := s.Current().Client; c != nil {
		return c, nil
	}
	return &tls.Certificate{}, nil
}

// DialTLSContext dials addr and makes a TLS handshake with a config built
// from the current material, the server name taken from addr. It has the
// signature of http.Transport.DialTLSContext.
func (s *Source) DialTLSContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.dial(ctx, network, addr, nil)
}

func (s *Source) dial(ctx context.Context, network, addr string, protos []string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	cfg, err := s.ClientConfig(host)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	cfg.NextProtos = protos
	d := &tls.Dialer{Config: cfg}
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	return conn, nil
}

// Transport returns an HTTP/1.1 round tripper whose every new connection
// is dialled by DialTLSContext, so it carries the material current when it
// is dialled. Pooled connections idle at a swap are closed then, and the
// idle ones are closed again before the first request after it; a request
// in flight finishes on its own connection. base supplies the other
// settings (timeouts, keep-alives) and is cloned; nil means
// http.DefaultTransport's. Proxies are not used: a peer is dialled
// directly, and its certificate is what is verified.
func (s *Source) Transport(base *http.Transport) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	tr := base.Clone()
	tr.Proxy = nil
	tr.TLSClientConfig = nil
	tr.ForceAttemptHTTP2 = false
	tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return s.dial(ctx, network, addr, []string{"http/1.1"})
	}
	t := &transport{src: s, base: tr}
	t.seen.Store(s.swaps.Load())
	s.transports.add(t)
	return t
}

// HTTPClient is an http.Client over Transport(nil).
func (s *Source) HTTPClient() *http.Client {
	return &http.Client{Transport: s.Transport(nil)}
}

type transport struct {
	src  *Source
	base *http.Transport
	seen atomic.Uint64 // the Source's swap count at the last request
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if n := t.src.swaps.Load(); t.seen.Swap(n) != n {
		t.base.CloseIdleConnections()
	}
	return t.base.RoundTrip(req)
}

// CloseIdleConnections lets http.Client.CloseIdleConnections reach base.
func (t *transport) CloseIdleConnections() { t.base.CloseIdleConnections() }

// transportRegistry lets a swap close the idle connections of every live
// transport without keeping a transport alive that its owner dropped.
type transportRegistry struct {
	mu   sync.Mutex
	list []weak.Pointer[transport]
}

// add registers t. Before the list would grow, the transports gone away
// are forgotten, so a service making many keeps a list of its live ones.
func (r *transportRegistry) add(t *transport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.list) == cap(r.list) {
		r.forEachLive(func(*transport) {})
	}
	r.list = append(r.list, weak.Make(t))
}

// closeIdle closes the idle connections of every live transport.
func (r *transportRegistry) closeIdle() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.forEachLive(func(t *transport) { t.base.CloseIdleConnections() })
}

// forEachLive calls fn for each live transport and drops the others. The
// caller holds r.mu.
func (r *transportRegistry) forEachLive(fn func(*transport)) {
	live := r.list[:0]
	for _, w := range r.list {
		if t := w.Value(); t != nil {
			fn(t)
			live = append(live, w)
		}
	}
	clear(r.list[len(live):])
	r.list = live
}
