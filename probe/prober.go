package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultMaxBody     = 64 << 10
	DefaultConcurrency = 8
)

// maxHeaderBytes caps response headers; a health endpoint has no business
// sending more, and the default (1 MB) is a lot to accept from a container.
const maxHeaderBytes = 64 << 10

// h2Window is the HTTP/2 receive window: the least MaxReceiveBufferPerConnection
// accepts.
const h2Window = 64 << 10

// userAgent identifies probes in the services' access logs.
const userAgent = "crank-mtls-controller-probe"

// Options configures a Prober. Zero values take the defaults.
type Options struct {
	// ClientCert is the controller's own client certificate, signed by our
	// CA, presented in the first step.
	ClientCert tls.Certificate
	// Roots is our trust bundle; served certificates must chain to it.
	Roots *x509.CertPool
	// Timeout bounds each step (all of its addresses together), so a probe
	// takes at most 3*Timeout. Default DefaultTimeout.
	Timeout time.Duration
	// MaxBody is how much of a response body is read. Default DefaultMaxBody.
	MaxBody int64
	// Concurrency is the most probes in flight across all targets; further
	// Probe calls wait. Default DefaultConcurrency.
	Concurrency int
	// Clock gives Result.At and the time served certificates are verified
	// at. Default time.Now.
	Clock func() time.Time
}

// credentials are swapped as one value so a probe never mixes a client
// certificate with the roots of another generation.
type credentials struct {
	cert  tls.Certificate
	roots *x509.CertPool
}

// Prober measures what security containers actually serve. It is safe for
// concurrent use.
type Prober struct {
	timeout time.Duration
	maxBody int64
	clock   func() time.Time
	sem     chan struct{}
	creds   atomic.Pointer[credentials]
	// acquired, if set, runs once a probe holds its semaphore slot: the test
	// seam that proves the bound without timing.
	acquired func()
}

// New returns a Prober for opts.
func New(opts Options) *Prober {
	p := &Prober{timeout: opts.Timeout, maxBody: opts.MaxBody, clock: opts.Clock}
	if p.timeout <= 0 {
		p.timeout = DefaultTimeout
	}
	if p.maxBody <= 0 {
		p.maxBody = DefaultMaxBody
	}
	if p.clock == nil {
		p.clock = time.Now
	}
	n := opts.Concurrency
	if n <= 0 {
		n = DefaultConcurrency
	}
	p.sem = make(chan struct{}, n)
	p.SetCredentials(opts.ClientCert, opts.Roots)
	return p
}

// SetCredentials replaces the client certificate and trust bundle, after a
// renewal of the controller's own certificate or a CA rollover. Probes
// already running finish with the credentials they started with. A nil roots
// trusts nothing (never the system roots: our services carry certificates of
// our CA only, and a public certificate for the same name proves nothing).
func (p *Prober) SetCredentials(cert tls.Certificate, roots *x509.CertPool) {
	if roots == nil {
		roots = x509.NewCertPool()
	}
	p.creds.Store(&credentials{cert: cert, roots: roots})
}

// Probe measures t: (1) HTTPS GET of the health path presenting our client
// certificate, verifying the server certificate against our roots and
// t.Service; (2) if (1) worked, the same without a client certificate;
// (3) plain HTTP GET of the health path on the HTTP port, unless it is 0 or
// the HTTPS port. Every step is a fresh connection and handshake to t.Addrs
// only, with no proxy, no redirects and a capped body. See Level for how the
// steps are classified.
//
// If ctx ends first, the Result holds what was measured until then (usually
// Down); callers must check ctx.Err() before acting on it.
func (p *Prober) Probe(ctx context.Context, t Target) (res Result) {
	start := time.Now()
	res.At = p.clock()
	defer func() { res.Duration = time.Since(start) }()

	addrs, err := t.validate()
	switch {
	case err != nil:
		res.Level, res.Findings = Down, []Finding{{InvalidTarget, err.Error()}}
		return res
	case t.HTTPSPort == 0 && t.HTTPPort == 0:
		res.Level, res.Findings = Down, []Finding{{NoPorts, "the target has neither an HTTPS nor an HTTP port"}}
		return res
	case len(addrs) == 0:
		res.Level, res.Findings = Down, []Finding{{NoAddresses, "the container has no address on the controller's networks"}}
		return res
	}
	if t.HealthPath == "" {
		t.HealthPath = DefaultHealthPath
	}

	select {
	case p.sem <- struct{}{}:
		defer func() { <-p.sem }()
		if p.acquired != nil {
			p.acquired()
		}
	case <-ctx.Done():
		res.Level = Down
		res.HTTPSWithClientCert.Err = fmt.Sprintf("probe not started: %v", ctx.Err())
		return res
	}

	creds := p.creds.Load()
	now := p.clock()
	var obs observations
	if t.HTTPSPort != 0 {
		obs.withCert = p.step(ctx, t, addrs, t.HTTPSPort, p.tlsConfig(t, creds, true))
		if obs.withCert.OK {
			obs.withoutCert = p.step(ctx, t, addrs, t.HTTPSPort, p.tlsConfig(t, creds, false))
		}
	}
	if t.HTTPPort != 0 && t.HTTPPort != t.HTTPSPort {
		obs.http = p.step(ctx, t, addrs, t.HTTPPort, nil)
	}
	res.HTTPSWithClientCert, res.HTTPSWithoutClientCert, res.HTTP = obs.withCert.Step, obs.withoutCert.Step, obs.http.Step
	if leaf := obs.withCert.leaf(); leaf != nil {
		res.ServedFingerprint, res.ServedNotAfter = Fingerprint(leaf), leaf.NotAfter
	}
	res.Level, res.Findings = decide(t, obs, creds.roots, now)
	return res
}

// alpn is what the TLS steps offer: h2 first, so that a gRPC-style service
// that speaks nothing else answers, then http/1.1. A server that selects
// nothing is spoken to in HTTP/1.1, like one that selects http/1.1.
var alpn = []string{"h2", "http/1.1"}

// curves are the key exchanges a probe offers: X25519 first, P-256 for a
// server without it. Not the post-quantum hybrid Go prefers by default: a
// probe carries a health request and our public client certificate, nothing
// worth recording today to decrypt later, and the hybrid's ML-KEM key
// generation and decapsulation cost a third of a probe's CPU.
var curves = []tls.CurveID{tls.X25519, tls.CurveP256}

// tlsConfig is the verifying client configuration of one step. The server
// name is only ever SNI and the name verified; the address dialed comes from
// the target's IPs.
func (p *Prober) tlsConfig(t Target, c *credentials, withCert bool) *tls.Config {
	cfg := &tls.Config{RootCAs: c.roots, ServerName: t.Service, Time: p.clock, NextProtos: slices.Clone(alpn),
		CurvePreferences: slices.Clone(curves)}
	if withCert && c.cert.Certificate != nil {
		cfg.Certificates = []tls.Certificate{c.cert}
	}
	return cfg
}

// step runs one GET against each address in turn until one accepts a TCP
// connection. tlsCfg nil means plain HTTP. One deadline covers all addresses.
func (p *Prober) step(ctx context.Context, t Target, addrs []netip.Addr, port int, tlsCfg *tls.Config) observation {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var o observation
	for _, a := range addrs {
		o = p.attempt(ctx, t, netip.AddrPortFrom(a, uint16(port)), tlsCfg)
		if o.connected || ctx.Err() != nil {
			break
		}
	}
	return o
}

// attempt is one request over one connection that it dials and (for HTTPS)
// handshakes itself, synchronously, so it knows exactly how far it got.
func (p *Prober) attempt(ctx context.Context, t Target, ap netip.AddrPort, tlsCfg *tls.Config) observation {
	o := observation{Step: Step{Attempted: true, Addr: ap.String()}}
	fail := func(err error) observation {
		o.err, o.Err = err, err.Error()
		return o
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", ap.String())
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	o.connected = true
	if d, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(d) // a belt to the context's braces: no read outlives the step
	}
	scheme, c := "http", conn
	if tlsCfg != nil {
		scheme = "https"
		tc, err := handshake(ctx, conn, tlsCfg, &o)
		if err != nil {
			o.handshakeFailed = true
			return fail(err)
		}
		c = tc
	}
	status, err := p.get(ctx, t, ap, scheme, c)
	if err != nil {
		return fail(err)
	}
	o.OK, o.Status = true, status
	return o
}

// handshake runs the TLS handshake over conn and records in o what the
// server showed of itself on the way, even when the handshake then fails.
func handshake(ctx context.Context, conn net.Conn, tlsCfg *tls.Config, o *observation) (*tls.Conn, error) {
	cfg := tlsCfg.Clone()
	// Runs right after the server certificate verified, before our own
	// certificate is sent: a later alert is then about our certificate.
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		o.verified, o.certs = true, cs.PeerCertificates
		return nil
	}
	rc := &readFlag{Conn: conn}
	tc := tls.Client(rc, cfg)
	err := tc.HandshakeContext(ctx)
	o.serverSpoke = rc.read.Load()
	return tc, err
}

// readFlag notes whether anything was read, which tells a server that
// answered the handshake (whatever it said) from one that hung up or stayed
// silent.
type readFlag struct {
	net.Conn
	read atomic.Bool
}

func (r *readFlag) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	if n > 0 {
		r.read.Store(true)
	}
	return n, err
}

// get sends the health request over c and returns the status. The Transport
// is fresh and is handed only c: no keep-alive, no proxy, nothing shared
// with another probe, so each attempt proves what is served right now, and
// no URL or redirect can make it dial elsewhere. It speaks HTTP/2 exactly
// when c is a *tls.Conn whose handshake negotiated "h2".
func (p *Prober) get(ctx context.Context, t Target, ap netip.AddrPort, scheme string, c net.Conn) (int, error) {
	var used atomic.Bool
	handOver := func(context.Context, string, string) (net.Conn, error) {
		if used.Swap(true) {
			return nil, errConnUsed
		}
		return c, nil
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DisableKeepAlives:      true, // for HTTP/2 too: the connection serves one request
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxHeaderBytes, // also HTTP/2's header list limit
		DialContext:            handOver,
		DialTLSContext:         handOver,
		Protocols:              protocolsFor(c),
		// Over HTTP/2 the Transport buffers what the server sends ahead of our
		// reads, up to the flow-control windows (4 MiB by default). The
		// smallest windows keep that near the body cap.
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerConnection: h2Window, MaxReceiveBufferPerStream: h2Window},
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+ap.String()+t.HealthPath, nil)
	if err != nil {
		return 0, fmt.Errorf("building the health request: %w", err)
	}
	req.Host = net.JoinHostPort(t.Service, strconv.Itoa(int(ap.Port())))
	req.Header.Set("User-Agent", userAgent)
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	// The status is all we need; reading a bounded prefix lets a well-behaved
	// server finish, and closing the rest drops the connection (or, over
	// HTTP/2, resets the stream).
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, p.maxBody))
	return resp.StatusCode, nil
}

// protocolsFor is HTTP/2 alone when c's handshake negotiated "h2", and
// HTTP/1.1 alone otherwise: the Transport speaks what the server agreed to,
// and sets nothing up for the protocol it will not use.
func protocolsFor(c net.Conn) *http.Protocols {
	var p http.Protocols
	if tc, ok := c.(*tls.Conn); ok && tc.ConnectionState().NegotiatedProtocol == "h2" {
		p.SetHTTP2(true)
	} else {
		p.SetHTTP1(true)
	}
	return &p
}

// errConnUsed would mean the Transport tried a second connection; it must
// not, since each attempt is exactly one connection.
var errConnUsed = errors.New("probe connection already used")
