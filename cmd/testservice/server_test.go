package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// testCA is an in-memory CA; no PEM fixtures are committed to expire later.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key := mustKey(t)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("creating CA: %v", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns cert and key PEM for a leaf with the given usage.
func (ca *testCA) issue(t *testing.T, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
	t.Helper()
	key := mustKey(t)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("issuing %s: %v", cn, err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatalf("marshalling key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

func mustKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("generating key: %v", err)
	}
	return key
}

// writeServerPair writes tls.crt/tls.key and returns the leaf's SHA-256.
func writeServerPair(t *testing.T, ca *testCA, dir string) string {
	t.Helper()
	certPEM, keyPEM := ca.issue(t, "svc", x509.ExtKeyUsageServerAuth)
	writeFiles(t, dir, map[string][]byte{fileServerCert: certPEM, fileServerKey: keyPEM})
	block, _ := pem.Decode(certPEM)
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
	}
}

// startApp runs the service on loopback ports and stops it at cleanup,
// failing the test if shutdown takes longer than the promised second.
func startApp(t *testing.T, cfg config) *app {
	t.Helper()
	cfg.HTTPSAddr, cfg.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	a, err := newApp(cfg, slog.New(slog.DiscardHandler), func() time.Time { return testNow })
	if err != nil {
		t.Fatalf("newApp: %v", err)
	}
	if err := a.listen(); err != nil {
		t.Fatalf("listen: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.run(ctx) }()
	t.Cleanup(func() {
		defer a.close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: got %v, want nil", err)
			}
		case <-time.After(time.Second):
			t.Errorf("shutdown took over 1s")
		}
	})
	return a
}

func getJSON(t *testing.T, c *http.Client, u string, v any) error {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func TestAdaptiveMTLSInProcess(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	servedSum := writeServerPair(t, ca, dir)
	clientCert, clientKey := ca.issue(t, "worker", x509.ExtKeyUsageClientAuth)
	writeFiles(t, dir, map[string][]byte{fileCA: ca.pem, fileClientCert: clientCert, fileClientKey: clientKey})

	// RELOAD=off: the restart-based path the controller's e2e tests need.
	a := startApp(t, config{Service: "svc", CertsDir: dir, Mode: ModeAdaptive, LoadOnce: true})
	if a.httpLn != nil {
		t.Errorf("got plain HTTP listener at level mtls, want none without ALSO_HTTP")
	}
	base := "https://" + a.httpsLn.Addr().String()
	tlsCfg, err := clientTLSConfig(dir, "localhost", true)
	if err != nil {
		t.Fatalf("client config: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}

	var health healthResponse
	if err := getJSON(t, client, base+"/health", &health); err != nil {
		t.Fatalf("GET /health with client cert: %v", err)
	}
	if want := (healthResponse{Service: "svc", Mode: ModeAdaptive, Level: LevelMTLS, CertsAtBoot: true, Peer: "worker"}); health != want {
		t.Errorf("got health %+v, want %+v", health, want)
	}

	noCert := tlsCfg.Clone()
	noCert.Certificates = nil
	if err := getJSON(t, &http.Client{Transport: &http.Transport{TLSClientConfig: noCert}}, base+"/health", &health); err == nil {
		t.Errorf("got success without a client cert, want the handshake refused")
	}

	var boot bootInfoResponse
	if err := getJSON(t, client, base+"/bootinfo", &boot); err != nil {
		t.Fatalf("GET /bootinfo: %v", err)
	}
	if boot.ServedCert != servedSum || !boot.StartedAt.Equal(testNow) || len(boot.FilesSeen) != 5 || boot.Reload != "off" {
		t.Errorf("got bootinfo %+v, want served %s, started %s, 5 files, reload off", boot, servedSum, testNow)
	}

	// /call makes an mTLS request with client.crt; calling itself proves it.
	var call callResponse
	if err := getJSON(t, client, base+"/call?url="+url.QueryEscape("https://localhost:"+portOf(a.httpsLn)+"/health"), &call); err != nil {
		t.Fatalf("GET /call: %v", err)
	}
	if call.Status != http.StatusOK || call.Error != "" {
		t.Errorf("got call %+v, want status 200 and no error", call)
	}

	t.Run("websocket echo over mtls", func(t *testing.T) { checkWSEcho(t, a.httpsLn.Addr().String(), tlsCfg) })

	// With RELOAD=off and no reload signal the process keeps what it
	// loaded at boot, like uvicorn: there is no watcher to take the files.
	if kc := a.cfg.sourceConfig(nil, nil); a.src == nil || !kc.LoadOnce {
		t.Fatalf("got a source %v with LoadOnce %v, want a source that loads once", a.src != nil, kc.LoadOnce)
	}
	newSum := writeServerPair(t, ca, dir)
	if got := a.servedFingerprint(); got != servedSum {
		t.Errorf("got served %s before reload, want the boot cert %s", got, servedSum)
	}
	if err := a.reload(); err != nil {
		t.Fatalf("reload: %v", err)
	}
	conn, err := tls.Dial("tcp", a.httpsLn.Addr().String(), tlsCfg)
	if err != nil {
		t.Fatalf("handshake after reload: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	if got := hex.EncodeToString(sum[:]); got != newSum {
		t.Errorf("got handshake leaf %s after reload, want %s", got, newSum)
	}
}

func portOf(ln net.Listener) string {
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

func checkWSEcho(t *testing.T, addr string, cfg *tls.Config) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	fmt.Fprintf(conn, "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", key)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading upgrade response: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != wsAccept(key) {
		t.Fatalf("got %d accept %q, want 101 %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"), wsAccept(key))
	}
	if _, err := conn.Write(clientFrame(true, opText, []byte("stream me"), true)); err != nil {
		t.Fatalf("writing frame: %v", err)
	}
	got := make([]byte, 2+len("stream me"))
	if _, err := io.ReadFull(br, got); err != nil {
		t.Fatalf("reading echo: %v", err)
	}
	if want := append([]byte{0x81, 9}, "stream me"...); string(got) != string(want) {
		t.Errorf("got echo % x, want % x", got, want)
	}
}

func TestTheaterWithoutCertsServesUntrustedSelfSigned(t *testing.T) {
	t.Parallel()
	a := startApp(t, config{Service: "svc", CertsDir: t.TempDir(), Mode: ModeTheater})
	// A verifying client must reject the self-signed cert...
	if _, err := tls.Dial("tcp", a.httpsLn.Addr().String(), &tls.Config{ServerName: "localhost"}); err == nil {
		t.Errorf("got a verified handshake with a self-signed cert, want failure")
	}
	// ...while the server itself accepts any client (test-only skip verify).
	conn, err := tls.Dial("tcp", a.httpsLn.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("got %v from a theater server with an anonymous client, want success", err)
	}
	conn.Close()
	if a.servedFingerprint() == "" {
		t.Errorf("got empty served fingerprint, want the self-signed leaf's")
	}
}

func TestPlainServesOnlyHTTP(t *testing.T) {
	t.Parallel()
	a := startApp(t, config{Service: "svc", CertsDir: filepath.Join(t.TempDir(), "absent"), Mode: ModeAdaptive})
	if a.httpsLn != nil {
		t.Fatalf("got an HTTPS listener at level plain, want none")
	}
	var health healthResponse
	if err := getJSON(t, http.DefaultClient, "http://"+a.httpLn.Addr().String()+"/health", &health); err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	if health.Level != LevelPlain || health.CertsAtBoot {
		t.Errorf("got %+v, want level plain without certs at boot", health)
	}
}
