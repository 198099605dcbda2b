package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/servicekit"
)

// reloadBudget is how long a published bundle may take to be served.
const reloadBudget = 2 * time.Second

// bundleVolume is a certs volume written by the controller's own
// AtomicWriter, with a CA of its own.
type bundleVolume struct {
	t    *testing.T
	root string
	vol  *certs.Volume
	ca   *certs.Authority
}

func newBundleVolume(t *testing.T) *bundleVolume {
	t.Helper()
	root := t.TempDir()
	vol, err := certs.OpenVolume(root)
	if err != nil {
		t.Fatalf("opening volume: %v", err)
	}
	t.Cleanup(func() { vol.Close() })
	ca, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatalf("opening authority: %v", err)
	}
	return &bundleVolume{t: t, root: root, vol: vol, ca: ca}
}

// publish issues a fresh bundle for service and swaps it in.
func (v *bundleVolume) publish(service string) *certs.BundleFiles {
	v.t.Helper()
	b, _, err := v.ca.IssueBundle(certs.Identity{Service: service, DNSNames: []string{service, "localhost", "127.0.0.1"}},
		certs.IssueOptions{Lifetime: time.Hour})
	if err != nil {
		v.t.Fatalf("issuing for %s: %v", service, err)
	}
	if _, err := v.vol.WriteBundle(service, b, certs.Owner{UID: -1, GID: -1}); err != nil {
		v.t.Fatalf("publishing for %s: %v", service, err)
	}
	return b
}

func pemSHA(t *testing.T, certPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("no PEM block")
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// recordingPeer is an mTLS server trusting the volume's CA that records
// the client certificate of its last request, as the platform sees a worker.
type recordingPeer struct {
	addr       string
	lastClient atomic.Value // string: SHA-256 of the last client leaf
}

func startRecordingPeer(t *testing.T, v *bundleVolume) *recordingPeer {
	t.Helper()
	b := v.publish("peer")
	pair, err := tls.X509KeyPair(b.ServerCert, b.ServerKey)
	if err != nil {
		t.Fatalf("peer pair: %v", err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{pair},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: v.ca.TrustPool()})
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	p := &recordingPeer{addr: ln.Addr().String()}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0),
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
			p.lastClient.Store(hex.EncodeToString(sum[:]))
		})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return p
}

func waitFor(t *testing.T, deadline time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var why string
	for time.Since(start) < deadline {
		var ok bool
		if ok, why = cond(); ok {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", deadline, why)
	return 0
}

// handshakeSHA is the leaf a new handshake with addr gets.
func handshakeSHA(addr string, cfg *tls.Config) (string, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:]), nil
}

// By default the service takes the bundle the controller swaps in, on
// both sides, with no restart, and connections opened before go on.
func TestAdaptiveTakesANewBundleWithoutARestart(t *testing.T) {
	t.Parallel()
	v := newBundleVolume(t)
	first := v.publish("svc")
	peer := startRecordingPeer(t, v)
	dir := filepath.Join(v.root, "svc")
	a := startApp(t, config{Service: "svc", CertsDir: dir, Mode: ModeAdaptive})
	addr := a.httpsLn.Addr().String()
	clientCfg, err := clientTLSConfig(dir, "localhost", true)
	if err != nil {
		t.Fatalf("client config: %v", err)
	}
	// A keep-alive connection opened before the swap.
	before := &http.Client{Transport: &http.Transport{TLSClientConfig: clientCfg}}
	var boot bootInfoResponse
	if err := getJSON(t, before, "https://"+addr+"/bootinfo", &boot); err != nil {
		t.Fatalf("GET /bootinfo: %v", err)
	}
	if boot.Reload != "watch" || boot.ServedCert != pemSHA(t, first.ServerCert) {
		t.Fatalf("got bootinfo %+v, want reload watch serving the first leaf", boot)
	}
	callURL := "https://" + addr + "/call?url=" + url.QueryEscape("https://"+peer.addr+"/")
	var call callResponse
	if err := getJSON(t, before, callURL, &call); err != nil || call.Status != http.StatusOK {
		t.Fatalf("GET /call: %+v, %v", call, err)
	}
	if got, want := peer.lastClient.Load(), pemSHA(t, first.ClientCert); got != want {
		t.Fatalf("got client cert %v at the peer, want the first %s", got, want)
	}

	next := v.publish("svc")
	wantServed, wantClient := pemSHA(t, next.ServerCert), pemSHA(t, next.ClientCert)
	took := waitFor(t, reloadBudget, func() (bool, string) {
		got, err := handshakeSHA(addr, clientCfg)
		return got == wantServed, fmt.Sprintf("new handshakes get %s (%v), want %s", got, err, wantServed)
	})
	t.Logf("new leaf served %s after the swap", took)
	if err := getJSON(t, before, callURL, &call); err != nil || call.Status != http.StatusOK {
		t.Fatalf("GET /call after the swap: %+v, %v", call, err)
	}
	if got := peer.lastClient.Load(); got != wantClient {
		t.Errorf("got client cert %v at the peer after the swap, want the new %s", got, wantClient)
	}

	resp, err := before.Get("https://" + addr + "/bootinfo")
	if err != nil {
		t.Fatalf("GET /bootinfo on the connection opened before the swap: %v", err)
	}
	defer resp.Body.Close()
	sum := sha256.Sum256(resp.TLS.PeerCertificates[0].Raw)
	if got := hex.EncodeToString(sum[:]); got != pemSHA(t, first.ServerCert) {
		t.Errorf("got leaf %s, want the connection opened before the swap (first leaf) reused", got)
	}
	boot = bootInfoResponse{}
	if err := json.NewDecoder(resp.Body).Decode(&boot); err != nil || boot.ServedCert != wantServed {
		t.Errorf("got served %s (%v) in /bootinfo, want the new leaf %s", boot.ServedCert, err, wantServed)
	}
}

func TestWaitForCerts(t *testing.T) {
	t.Parallel()
	t.Run("should fail in production when the bundle stays incomplete", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"SERVICE_NAME": "svc", "CERTS_DIR": t.TempDir(), "CERTS_WAIT": "50ms", "CRANK_ENVIRONMENT": "production"}
		cfg, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("loadConfig: %v", err)
		}
		cfg.Poll = 5 * time.Millisecond
		if _, err := waitForCerts(context.Background(), cfg, slog.New(slog.DiscardHandler)); !errors.Is(err, servicekit.ErrIncompleteBundle) {
			t.Errorf("got %v, want an error wrapping servicekit.ErrIncompleteBundle", err)
		}
	})
	t.Run("should start degraded with one warning in development", func(t *testing.T) {
		t.Parallel()
		env := map[string]string{"SERVICE_NAME": "svc", "CERTS_DIR": t.TempDir(), "CERTS_WAIT": "50ms"}
		cfg, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("loadConfig: %v", err)
		}
		cfg.Poll = 5 * time.Millisecond
		var out bytes.Buffer
		if _, err := waitForCerts(context.Background(), cfg, slog.New(slog.NewJSONHandler(&out, nil))); err != nil {
			t.Errorf("got %v, want the start to go on", err)
		}
		if n := strings.Count(out.String(), `"level":"WARN"`); n != 1 {
			t.Errorf("got %d warnings, want 1:\n%s", n, out.String())
		}
	})
	t.Run("should start at mtls once the bundle arrives under CRANK_CERTS_DIR", func(t *testing.T) {
		t.Parallel()
		v := newBundleVolume(t)
		env := map[string]string{"SERVICE_NAME": "svc", "CRANK_CERTS_DIR": v.root, "CERTS_WAIT": "10s", "CRANK_ENVIRONMENT": "production"}
		cfg, err := loadConfig(func(k string) string { return env[k] })
		if err != nil {
			t.Fatalf("loadConfig: %v", err)
		}
		cfg.Poll = 5 * time.Millisecond
		type result struct {
			cfg config
			err error
		}
		done := make(chan result, 1)
		go func() {
			c, err := waitForCerts(context.Background(), cfg, slog.New(slog.DiscardHandler))
			done <- result{c, err}
		}()
		v.publish("svc")
		var r result
		select {
		case r = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the wait did not end within 5s of the bundle's arrival")
		}
		if r.err != nil || r.cfg.CertsDir != filepath.Join(v.root, "svc") {
			t.Fatalf("got dir %s, %v; want %s", r.cfg.CertsDir, r.err, filepath.Join(v.root, "svc"))
		}
		a := startApp(t, r.cfg)
		if a.dec.Level != LevelMTLS || !a.boot.CertsAtBoot {
			t.Errorf("got level %s, certs at boot %v; want mtls with certs from the first request", a.dec.Level, a.boot.CertsAtBoot)
		}
	})
}

// A bundle whose files are present but do not belong together is refused
// at start, as uvicorn refuses a bad ssl_certfile, rather than served.
func TestAdaptiveRefusesToStartOnAnInconsistentBundle(t *testing.T) {
	t.Parallel()
	ca := newTestCA(t)
	dir := t.TempDir()
	writeServerPair(t, ca, dir)
	_, otherKey := ca.issue(t, "svc", x509.ExtKeyUsageServerAuth)
	writeFiles(t, dir, map[string][]byte{fileCA: ca.pem, fileServerKey: otherKey})
	_, err := newApp(config{Service: "svc", CertsDir: dir, Mode: ModeAdaptive}, slog.New(slog.DiscardHandler), time.Now)
	if !errors.Is(err, servicekit.ErrUnusableBundle) || !strings.Contains(err.Error(), "key-mismatch") {
		t.Errorf("got %v, want a refusal naming the key mismatch", err)
	}
}
