package main

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/status"
)

// listenerKinds are the two listeners the controller serves: the plain one
// and the mTLS status listener. Each builds the server and client TLS
// configurations (nil for plain) for one test.
var listenerKinds = map[string]func(t *testing.T) (server, client *tls.Config){
	"plain": func(*testing.T) (*tls.Config, *tls.Config) { return nil, nil },
	"mTLS":  mtlsPair,
}

// mtlsPair is the status listener's configuration and an operator's client
// configuration, both of one fresh CA.
func mtlsPair(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	a := mtlsAuthority(t)
	server, err := status.ListenerTLS(a, []string{"127.0.0.1"}, certs.IssueOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := a.IssueBundle(certs.Identity{Service: "operator", DNSNames: []string{"operator"}}, certs.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(b.ClientCert, b.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return server, &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: a.TrustPool()}
}

// serveLimited serves an "ok" handler with newHTTPServer(limits) on a
// loopback port, over TLS when serverTLS is set, and returns its address.
func serveLimited(t *testing.T, limits serverLimits, serverTLS *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := newHTTPServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	}), limits)
	if serverTLS != nil {
		srv.TLSConfig = serverTLS
		ln = tls.NewListener(ln, serverTLS)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

func dial(t *testing.T, addr string, clientTLS *tls.Config) net.Conn {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	var conn net.Conn
	var err error
	if clientTLS != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, clientTLS)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// roundTrip sends one keep-alive GET on conn and reads the whole response.
func roundTrip(t *testing.T, conn net.Conn, br *bufio.Reader) {
	t.Helper()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: controller\r\n\r\n"); err != nil {
		t.Fatalf("writing request: %v", err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("got status %d (close %t), want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
	}
}

func TestServerClosesIdleConnections(t *testing.T) {
	t.Parallel()
	const idle = 100 * time.Millisecond
	// waitFor is how long the test waits for the close: far above idle, so
	// a loaded machine does not fail it, and well under any default.
	const waitFor = 3 * time.Second
	limits := defaultServerLimits
	limits.IdleTimeout = idle
	for kind, pair := range listenerKinds {
		t.Run("should close an idle keep-alive connection after IdleTimeout on the "+kind+" listener", func(t *testing.T) {
			t.Parallel()
			serverTLS, clientTLS := pair(t)
			conn := dial(t, serveLimited(t, limits, serverTLS), clientTLS)
			br := bufio.NewReader(conn)
			// Two requests prove the connection is kept alive between them.
			roundTrip(t, conn, br)
			roundTrip(t, conn, br)

			if err := conn.SetReadDeadline(time.Now().Add(waitFor)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			n, err := br.Read(make([]byte, 1))
			var ne net.Error
			switch {
			case errors.As(err, &ne) && ne.Timeout():
				t.Fatalf("got the connection still open after %v, want it closed by the server after %v idle", waitFor, idle)
			case err == nil:
				t.Fatalf("got %d unexpected bytes on an idle connection, want it closed", n)
			}
			t.Logf("closed after %v idle (%v)", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

func TestServerLimitsHeaderSize(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		header int // bytes in one request header's value
		// wantCode is the response status.
		wantCode int
	}{
		"should serve a request carrying 8 KiB of cookies":         {header: 8 << 10, wantCode: http.StatusOK},
		"should answer 431 to a request with 64 KiB of headers":    {header: 64 << 10, wantCode: http.StatusRequestHeaderFieldsTooLarge},
		"should answer 431 just past the cap and Go's 4 KiB slack": {header: serverMaxHeaderBytes + 4096, wantCode: http.StatusRequestHeaderFieldsTooLarge},
	}
	for kind, pair := range listenerKinds {
		for name, tc := range tests {
			t.Run(fmt.Sprintf("%s on the %s listener", name, kind), func(t *testing.T) {
				t.Parallel()
				serverTLS, clientTLS := pair(t)
				addr := serveLimited(t, defaultServerLimits, serverTLS)
				tr := &http.Transport{TLSClientConfig: clientTLS}
				t.Cleanup(tr.CloseIdleConnections)
				scheme := "http"
				if clientTLS != nil {
					scheme = "https"
				}
				req, err := http.NewRequest(http.MethodGet, scheme+"://"+addr+"/healthz", nil)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Cookie", "pad="+strings.Repeat("a", tc.header))
				resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_ = resp.Body.Close()
				if resp.StatusCode != tc.wantCode {
					t.Errorf("got status %d, want %d", resp.StatusCode, tc.wantCode)
				}
			})
		}
	}
}
