package probe

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// testService is the service name the test servers are issued for.
const testService = "email-parser"

// pki is an in-memory CA (in t.TempDir) and the controller's credentials.
type pki struct {
	auth   *certs.Authority
	client tls.Certificate // the controller's client certificate
	roots  *x509.CertPool
}

// newPKI builds a CA two days in the past, so tests can issue leaves that
// have already expired.
func newPKI(t testing.TB) *pki {
	t.Helper()
	auth, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, time.Now().Add(-48*time.Hour))
	if err != nil {
		t.Fatalf("opening authority: %v", err)
	}
	p := &pki{auth: auth, roots: auth.TrustPool()}
	b := p.issue(t, "crank-mtls-controller", []string{"crank-mtls-controller"}, certs.IssueOptions{})
	if p.client, err = tls.X509KeyPair(b.ClientCert, b.ClientKey); err != nil {
		t.Fatalf("client key pair: %v", err)
	}
	return p
}

func (p *pki) issue(t testing.TB, service string, names []string, o certs.IssueOptions) *certs.BundleFiles {
	t.Helper()
	b, _, err := p.auth.IssueBundle(certs.Identity{Service: service, DNSNames: names}, o)
	if err != nil {
		t.Fatalf("issuing bundle: %v", err)
	}
	return b
}

// serverCert issues a server certificate and returns it with its leaf.
func (p *pki) serverCert(t testing.TB, names []string, o certs.IssueOptions) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	b := p.issue(t, testService, names, o)
	c, err := tls.X509KeyPair(b.ServerCert, b.ServerKey)
	if err != nil {
		t.Fatalf("server key pair: %v", err)
	}
	leaves, err := certs.ParseCertificatesPEM(b.ServerCert)
	if err != nil {
		t.Fatalf("parsing server cert: %v", err)
	}
	return c, leaves[0]
}

// serverOpts describe a TLS test server; the zero value is an mTLS server
// (RequireAndVerifyClientCert) with a valid certificate for testService.
type serverOpts struct {
	clientAuth tls.ClientAuthType
	clientCAs  *x509.CertPool
	names      []string
	issue      certs.IssueOptions
	cert       *tls.Certificate // replaces the issued certificate
	minVersion uint16
	maxVersion uint16
	// nextProtos is the server's ALPN list; nil keeps httptest's http/1.1.
	nextProtos []string
	// h2Only turns HTTP/1 off: a gRPC-style server that answers only HTTP/2
	// and drops a connection that negotiated nothing.
	h2Only  bool
	listen  string // listen address, default 127.0.0.1:0
	handler http.Handler
	// onHello runs when a ClientHello arrives; onDone when a handshake
	// completes. For counting handshakes in flight.
	onHello, onDone func()
	// curves are the key exchanges the server accepts; nil is Go's default.
	curves []tls.CurveID
	// hello, if set, sees each ClientHello.
	hello func(*tls.ClientHelloInfo)
}

type serverOpt func(*serverOpts)

func withClientAuth(a tls.ClientAuthType) serverOpt { return func(o *serverOpts) { o.clientAuth = a } }
func withClientCAs(p *x509.CertPool) serverOpt      { return func(o *serverOpts) { o.clientCAs = p } }
func withNames(n ...string) serverOpt               { return func(o *serverOpts) { o.names = n } }
func withIssue(i certs.IssueOptions) serverOpt      { return func(o *serverOpts) { o.issue = i } }
func withCert(c tls.Certificate) serverOpt          { return func(o *serverOpts) { o.cert = &c } }
func withHandler(h http.Handler) serverOpt          { return func(o *serverOpts) { o.handler = h } }
func withMinVersion(v uint16) serverOpt             { return func(o *serverOpts) { o.minVersion = v } }
func withMaxVersion(v uint16) serverOpt             { return func(o *serverOpts) { o.maxVersion = v } }
func withNextProtos(p ...string) serverOpt          { return func(o *serverOpts) { o.nextProtos = p } }
func withListen(addr string) serverOpt              { return func(o *serverOpts) { o.listen = addr } }
func withH2Only() serverOpt {
	return func(o *serverOpts) { o.nextProtos, o.h2Only = []string{"h2"}, true }
}
func withStatus(code int) serverOpt {
	return withHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
}
func withCurves(c ...tls.CurveID) serverOpt { return func(o *serverOpts) { o.curves = c } }
func withHelloInfo(f func(*tls.ClientHelloInfo)) serverOpt {
	return func(o *serverOpts) { o.hello = f }
}
func withHandshakeHooks(hello, done func()) serverOpt {
	return func(o *serverOpts) { o.onHello, o.onDone = hello, done }
}

// okHandler answers 200 to everything.
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })

// tlsServer starts a TLS server on 127.0.0.1 and returns its port and the
// leaf it serves.
func (p *pki) tlsServer(t testing.TB, opts ...serverOpt) (int, *x509.Certificate) {
	t.Helper()
	o := serverOpts{clientAuth: tls.RequireAndVerifyClientCert, clientCAs: p.roots, names: []string{testService, "localhost"}, handler: okHandler}
	for _, f := range opts {
		f(&o)
	}
	var leaf *x509.Certificate
	var cert tls.Certificate
	if o.cert != nil {
		cert = *o.cert
		leaf = cert.Leaf
	} else {
		cert, leaf = p.serverCert(t, o.names, o.issue)
	}
	s := httptest.NewUnstartedServer(o.handler)
	if o.listen != "" {
		l, err := net.Listen("tcp", o.listen)
		if err != nil {
			t.Skipf("cannot listen on %s: %v", o.listen, err)
		}
		s.Listener.Close()
		s.Listener = l
	}
	s.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: o.clientAuth, ClientCAs: o.clientCAs,
		MinVersion: o.minVersion, MaxVersion: o.maxVersion, NextProtos: o.nextProtos, CurvePreferences: o.curves}
	if o.h2Only {
		var h2 http.Protocols
		h2.SetHTTP2(true)
		s.Config.Protocols = &h2
	}
	if o.onHello != nil || o.hello != nil {
		s.TLS.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if o.onHello != nil {
				o.onHello()
			}
			if o.hello != nil {
				o.hello(h)
			}
			return nil, nil
		}
	}
	if o.onDone != nil {
		s.TLS.VerifyConnection = func(tls.ConnectionState) error { o.onDone(); return nil }
	}
	s.Config.ErrorLog = discardLog()
	s.StartTLS()
	t.Cleanup(s.Close)
	return portOf(t, s.Listener.Addr()), leaf
}

// plainServer starts an HTTP server on 127.0.0.1 and returns its port.
func plainServer(t testing.TB, h http.Handler) int {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return portOf(t, s.Listener.Addr())
}

// rawServer accepts connections on 127.0.0.1 and hands each to serve, for
// servers Go's TLS stack cannot play (one that hangs up at the ClientHello,
// an old one that answers TLS 1.1). It returns the port.
func rawServer(t testing.TB, serve func(net.Conn)) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	// The accept loop is itself in wg, so no wg.Go races with wg.Wait.
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a broken test fails instead of hanging
				serve(c)
			})
		}
	})
	return portOf(t, l.Addr())
}

// readRecord reads one TLS record (the ClientHello) and discards it.
func readRecord(c net.Conn) error {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return err
	}
	_, err := io.CopyN(io.Discard, c, int64(hdr[3])<<8|int64(hdr[4]))
	return err
}

// hangUpAtHello reads the ClientHello and closes the connection, as servers
// do that find nothing they can agree to and send no alert.
func hangUpAtHello(c net.Conn) { _ = readRecord(c) }

// oldServerHello answers the ClientHello like a server that predates the
// supported_versions extension and knows nothing newer than vers: it picks
// vers from the ClientHello's legacy version field, as RFC 8446 D.1 expects.
func oldServerHello(vers uint16) func(net.Conn) {
	return func(c net.Conn) {
		if readRecord(c) != nil {
			return
		}
		body := []byte{byte(vers >> 8), byte(vers)}
		body = append(body, make([]byte, 32)...) // random
		body = append(body, 0)                   // no session ID
		body = append(body, 0xc0, 0x13)          // TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA
		body = append(body, 0)                   // no compression, no extensions
		// A ServerHello message in a handshake record.
		msg := append([]byte{2, 0, 0, byte(len(body))}, body...)
		_, _ = c.Write(append([]byte{22, 3, 1, 0, byte(len(msg))}, msg...))
		_, _ = io.Copy(io.Discard, c) // until the client's alert and close
	}
}

// closedPort returns a port on 127.0.0.1 that nothing listens on.
func closedPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	port := portOf(t, l.Addr())
	l.Close()
	return port
}

func portOf(t testing.TB, a net.Addr) int {
	t.Helper()
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		t.Fatalf("got listener address %T, want *net.TCPAddr", a)
	}
	return ta.Port
}

// selfSigned is a self-signed certificate that even names the service, made
// with certs.NewCA: the "verify=False" theater's typical cert.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	ca, err := certs.NewCA(testService, certs.ECDSAP256, time.Hour, time.Now())
	if err != nil {
		t.Fatalf("self-signed: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{ca.Cert.Raw}, PrivateKey: ca.Key, Leaf: ca.Cert}
}

type targetOpt func(*Target)

func withHTTPS(port int) targetOpt     { return func(t *Target) { t.HTTPSPort = port } }
func withHTTP(port int) targetOpt      { return func(t *Target) { t.HTTPPort = port } }
func withAddrs(a ...string) targetOpt  { return func(t *Target) { t.Addrs = a } }
func withExpected(fp string) targetOpt { return func(t *Target) { t.ExpectedFingerprint = fp } }

// newTarget is testService on 127.0.0.1 with no ports.
func newTarget(opts ...targetOpt) Target {
	t := Target{Service: testService, Addrs: []string{"127.0.0.1"}}
	for _, f := range opts {
		f(&t)
	}
	return t
}

type proberOpt func(*Options)

func withTimeout(d time.Duration) proberOpt  { return func(o *Options) { o.Timeout = d } }
func withMaxBody(n int64) proberOpt          { return func(o *Options) { o.MaxBody = n } }
func withConcurrency(n int) proberOpt        { return func(o *Options) { o.Concurrency = n } }
func withClock(c func() time.Time) proberOpt { return func(o *Options) { o.Clock = c } }

// prober uses p's credentials and a generous timeout: tests wait on
// deadlines, never on sleeps, and a loaded CI machine is slow.
func (p *pki) prober(opts ...proberOpt) *Prober {
	o := Options{ClientCert: p.client, Roots: p.roots, Timeout: 10 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	return New(o)
}

func reasonsString(rs []Reason) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// discardLog silences the servers' "TLS handshake error" lines, which the
// refusal cases produce on purpose.
func discardLog() *log.Logger { return log.New(io.Discard, "", 0) }
