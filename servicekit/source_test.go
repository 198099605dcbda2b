package servicekit

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// openSource opens a watching Source on service's dir with the default
// poll and records its log lines; it is closed at cleanup.
func openSource(t *testing.T, dir string, opts ...func(*Config)) (*Source, *logRecorder) {
	t.Helper()
	rec := &logRecorder{}
	cfg := Config{Service: filepath.Base(dir), Dir: dir, Logger: slog.New(rec)}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := NewSource(context.Background(), cfg)
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, rec
}

// peerServer is an HTTPS server on 127.0.0.1 that answers every request
// with the SHA-256 of the client certificate it verified and the client's
// address, and counts connections opened and closed.
type peerServer struct {
	addr           string
	opened, closed atomic.Int64
}

func startServer(t *testing.T, cfg *tls.Config) *peerServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	ps := &peerServer{addr: ln.Addr().String()}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			peer := "-"
			if len(r.TLS.PeerCertificates) > 0 {
				peer = certSHA(r.TLS.PeerCertificates[0])
			}
			fmt.Fprintf(w, "%s %s", peer, r.RemoteAddr)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0), // refused handshakes are the point of some tests
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				ps.opened.Add(1)
			case http.StateClosed, http.StateHijacked:
				ps.closed.Add(1)
			}
		},
	}
	go func() { _ = srv.Serve(tls.NewListener(ln, cfg)) }()
	t.Cleanup(func() { srv.Close() })
	return ps
}

// exchange sends one HTTP/1.1 request on conn, keeping it open, and
// returns the server's answer: "<client cert sha> <client addr>".
func exchange(conn *tls.Conn) (string, error) {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprint(conn, "GET / HTTP/1.1\r\nHost: api\r\n\r\n"); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

// served dials addr with cfg and returns the server leaf's SHA-256.
func served(addr string, cfg *tls.Config) (string, error) {
	conn, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if _, err := exchange(conn); err != nil {
		return "", err
	}
	return certSHA(conn.ConnectionState().PeerCertificates[0]), nil
}

// mtlsPair is two services in one volume, api serving mTLS from its Source
// and worker calling it with its own.
type mtlsPair struct {
	f           *volumeFixture
	api, worker *Source
	apiLog      *logRecorder
	server      *peerServer
	apiBundle   *certs.BundleFiles
	workerFiles *certs.BundleFiles
}

func newMTLSPair(t *testing.T) *mtlsPair {
	t.Helper()
	p := &mtlsPair{f: newVolume(t)}
	p.apiBundle, p.workerFiles = p.f.issue(p.f.ca, "api"), p.f.issue(p.f.ca, "worker")
	p.f.publish("api", p.apiBundle)
	p.f.publish("worker", p.workerFiles)
	p.api, p.apiLog = openSource(t, p.f.dir("api"))
	p.worker, _ = openSource(t, p.f.dir("worker"))
	p.server = startServer(t, p.api.ServerConfig(LevelMTLS, nil))
	return p
}

// workerConfig is a config for one connection from worker to api.
func (p *mtlsPair) workerConfig(t *testing.T) *tls.Config {
	t.Helper()
	cfg, err := p.worker.ClientConfig("127.0.0.1")
	if err != nil {
		t.Fatalf("worker client config: %v", err)
	}
	return cfg
}

func TestSourceServerRequiresAndVerifiesAClientCert(t *testing.T) {
	t.Parallel()
	p := newMTLSPair(t)
	conn, err := tls.Dial("tcp", p.server.addr, p.workerConfig(t))
	if err != nil {
		t.Fatalf("dial with the worker's cert: %v", err)
	}
	defer conn.Close()
	got, err := exchange(conn)
	if err != nil {
		t.Fatalf("request with the worker's cert: %v", err)
	}
	if want := leafSHA(t, p.workerFiles.ClientCert); !strings.HasPrefix(got, want+" ") {
		t.Errorf("got %q, want the worker's client cert %s verified", got, want)
	}
	if got, want := certSHA(conn.ConnectionState().PeerCertificates[0]), leafSHA(t, p.apiBundle.ServerCert); got != want {
		t.Errorf("got server cert %s, want api's %s", got, want)
	}

	noCert, err := p.worker.Current().ClientConfig("127.0.0.1", false)
	if err != nil {
		t.Fatalf("client config: %v", err)
	}
	noCert.Certificates = nil
	if _, err := served(p.server.addr, noCert); err == nil {
		t.Errorf("got an answer without a client cert, want the handshake refused")
	}

	foreign := newVolume(t).issue(newAuthority(t), "worker")
	pair, err := tls.X509KeyPair(foreign.ClientCert, foreign.ClientKey)
	if err != nil {
		t.Fatalf("foreign pair: %v", err)
	}
	noCert.Certificates = []tls.Certificate{pair}
	if _, err := served(p.server.addr, noCert); err == nil {
		t.Errorf("got an answer with a client cert of another CA, want the handshake refused")
	}
}

func TestSourceServesANewLeafWithinTwoSecondsAndKeepsOpenConnections(t *testing.T) {
	t.Parallel()
	p := newMTLSPair(t)
	old, err := tls.Dial("tcp", p.server.addr, p.workerConfig(t))
	if err != nil {
		t.Fatalf("dial before the swap: %v", err)
	}
	defer old.Close()
	if _, err := exchange(old); err != nil {
		t.Fatalf("request before the swap: %v", err)
	}

	next := p.f.issue(p.f.ca, "api")
	gen := p.f.publish("api", next)
	want := leafSHA(t, next.ServerCert)
	took := waitFor(t, reloadBudget, func() (bool, string) {
		got, err := served(p.server.addr, p.workerConfig(t))
		return got == want, fmt.Sprintf("new connections get %s (%v), want %s\n%s", got, err, want, p.apiLog)
	})
	t.Logf("new leaf served %s after the swap", took)
	if got := p.api.Current().Generation; got != gen {
		t.Errorf("got generation %s, want %s", got, gen)
	}

	if _, err := exchange(old); err != nil {
		t.Errorf("got %v on a connection opened before the swap, want it to keep working", err)
	}
	if got, want := certSHA(old.ConnectionState().PeerCertificates[0]), leafSHA(t, p.apiBundle.ServerCert); got != want {
		t.Errorf("got %s on the old connection, want the old leaf %s", got, want)
	}
}

// After a rollover to a new CA, the server's client CAs and the client's
// roots must both follow: the new server leaf chains only to the new CA,
// and so does the worker's new client leaf.
func TestSourceFollowsANewCAOnBothSides(t *testing.T) {
	t.Parallel()
	p := newMTLSPair(t)
	client := p.worker.HTTPClient()
	url := "https://" + p.server.addr + "/"
	if _, err := getBody(client, url); err != nil {
		t.Fatalf("request before the rollover: %v", err)
	}
	oldWorker := p.worker.Current().Client

	ca2 := newAuthority(t)
	api2, worker2 := p.f.issue(ca2, "api"), p.f.issue(ca2, "worker")
	p.f.publish("api", api2)
	p.f.publish("worker", worker2)
	wantWorker := leafSHA(t, worker2.ClientCert)
	took := waitFor(t, reloadBudget, func() (bool, string) {
		resp, err := client.Get(url)
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		servedSHA := certSHA(resp.TLS.PeerCertificates[0])
		return strings.HasPrefix(string(body), wantWorker+" ") && servedSHA == leafSHA(t, api2.ServerCert),
			fmt.Sprintf("server saw %q and served %s", body, servedSHA)
	})
	t.Logf("both sides on the new CA %s after the swap", took)

	// The server no longer accepts a client leaf of the old CA.
	stale := &tls.Config{RootCAs: p.worker.Current().Roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{*oldWorker}}
	if _, err := served(p.server.addr, stale); err == nil {
		t.Errorf("got an answer to the old CA's client cert, want the server to trust only the new CA")
	}
}

func getBody(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return string(body), err
}

func TestSourceTransportPresentsTheNewClientCertOnANewConnection(t *testing.T) {
	t.Parallel()
	p := newMTLSPair(t)
	client := p.worker.HTTPClient()
	url := "https://" + p.server.addr + "/"
	first, err := getBody(client, url)
	if err != nil {
		t.Fatalf("first request: %v", err)
	}
	// Keep-alive works, so a new connection below is the swap's doing.
	if again, err := getBody(client, url); err != nil || again != first {
		t.Fatalf("got %q (%v) on the second request, want the pooled connection again (%q)", again, err, first)
	}

	next := p.f.issue(p.f.ca, "worker")
	gen := p.f.publish("worker", next)
	waitFor(t, reloadBudget, func() (bool, string) {
		return p.worker.Current().Generation == gen, "worker still on " + p.worker.Current().Generation
	})
	// The idle pooled connection is closed at the swap, not at the next request.
	waitFor(t, reloadBudget, func() (bool, string) {
		return p.server.closed.Load() >= 1, "the idle connection is still open"
	})
	got, err := getBody(client, url)
	if err != nil {
		t.Fatalf("request after the swap: %v", err)
	}
	want := leafSHA(t, next.ClientCert)
	if !strings.HasPrefix(got, want+" ") || got == first {
		t.Errorf("got %q after the swap, want the new client cert %s on a new connection (was %q)", got, want, first)
	}
}

func TestSourceKeepsItsMaterialWhenANewGenerationIsBad(t *testing.T) {
	t.Parallel()
	p := newMTLSPair(t)
	good := p.api.Current().Generation
	wantServed := leafSHA(t, p.apiBundle.ServerCert)
	next := p.f.issue(p.f.ca, "api")

	incomplete := filesOf(next)
	delete(incomplete, FileClientKey)
	mismatched := filesOf(next)
	mismatched[FileServerKey] = p.apiBundle.ServerKey
	for name, files := range map[string]map[string][]byte{"incomplete": incomplete, "mismatched": mismatched} {
		gen := p.f.publishRaw("api", files)
		waitFor(t, reloadBudget, func() (bool, string) {
			return len(p.apiLog.warnings(keyGeneration, gen)) > 0, name + ": no warning yet\n" + p.apiLog.String()
		})
		for range 3 {
			p.api.look()
		}
		if w := p.apiLog.warnings(keyGeneration, gen); len(w) != 1 {
			t.Errorf("%s: got %d warnings for generation %s, want 1:\n%s", name, len(w), gen, p.apiLog)
		}
		if got := p.api.Current().Generation; got != good {
			t.Errorf("%s: got generation %s taken, want %s kept", name, got, good)
		}
		if got, err := served(p.server.addr, p.workerConfig(t)); got != wantServed {
			t.Errorf("%s: got %s served (%v), want the previous leaf %s", name, got, err, wantServed)
		}
	}
	if w := p.apiLog.warnings(keyProblems, "client.key: missing: file is absent"); len(w) != 1 {
		t.Errorf("got %d warnings naming the missing client.key, want 1:\n%s", len(w), p.apiLog)
	}

	gen := p.f.publish("api", next)
	want := leafSHA(t, next.ServerCert)
	waitFor(t, reloadBudget, func() (bool, string) {
		got, err := served(p.server.addr, p.workerConfig(t))
		return got == want && p.api.Current().Generation == gen, fmt.Sprintf("served %s (%v), want %s", got, err, want)
	})
}

// A TLS session made under one bundle must not resume under the next:
// resumption skips the certificate and the client CA check.
func TestSourceDoesNotResumeASessionFromAnOlderBundle(t *testing.T) {
	t.Parallel()
	p := newMTLSPair(t)
	cached, err := p.worker.Current().ClientConfig("127.0.0.1", true)
	if err != nil {
		t.Fatalf("client config: %v", err)
	}
	cached.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	dialState := func() (tls.ConnectionState, error) {
		conn, err := tls.Dial("tcp", p.server.addr, cached)
		if err != nil {
			return tls.ConnectionState{}, err
		}
		defer conn.Close()
		_, err = exchange(conn) // reads the session ticket too
		return conn.ConnectionState(), err
	}
	if _, err := dialState(); err != nil {
		t.Fatalf("first connection: %v", err)
	}
	if st, err := dialState(); err != nil || !st.DidResume {
		t.Fatalf("got resumed %v (%v) before the swap, want the setup to resume at all", st.DidResume, err)
	}

	next := p.f.issue(p.f.ca, "api")
	gen := p.f.publish("api", next)
	waitFor(t, reloadBudget, func() (bool, string) {
		return p.api.Current().Generation == gen, "api still on " + p.api.Current().Generation
	})
	st, err := dialState()
	if err != nil {
		t.Fatalf("connection after the swap: %v", err)
	}
	if st.DidResume || certSHA(st.PeerCertificates[0]) != leafSHA(t, next.ServerCert) {
		t.Errorf("got resumed %v serving %s, want a full handshake with the new leaf", st.DidResume, certSHA(st.PeerCertificates[0]))
	}
}

func TestSourceLoadOnceTakesANewBundleOnlyOnReload(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	f.publish("api", f.issue(f.ca, "api"))
	s, _ := openSource(t, f.dir("api"), func(c *Config) { c.LoadOnce = true })
	select {
	case <-s.done:
	default:
		t.Fatalf("got a watcher running with LoadOnce, want none")
	}
	first := s.Current().Generation
	gen := f.publish("api", f.issue(f.ca, "api"))
	if got := s.Current().Generation; got != first {
		t.Fatalf("got %s before Reload, want %s", got, first)
	}
	if err := s.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := s.Current().Generation; got != gen {
		t.Errorf("got %s after Reload, want %s", got, gen)
	}
	f.publishRaw("api", map[string][]byte{FileServerCert: []byte("x")})
	if err := s.Reload(); !errors.Is(err, ErrUnusableBundle) {
		t.Errorf("got %v reloading a broken bundle, want ErrUnusableBundle", err)
	}
	if got := s.Current().Generation; got != gen {
		t.Errorf("got %s after a failed Reload, want %s kept", got, gen)
	}
}

func TestNewSourceRefusesAnUnusableBundle(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	b := f.issue(f.ca, "api")
	mismatched := filesOf(b)
	mismatched[FileClientKey] = b.ServerKey
	tests := map[string]struct {
		files   map[string][]byte
		require FileSet
		// wantText is a part of the error naming the cause.
		wantText string
	}{
		"should refuse an empty dir":                     {wantText: "no bundle files"},
		"should refuse a bundle with a mismatched key":   {files: mismatched, wantText: "client.key: key-mismatch"},
		"should refuse a bundle lacking a required file": {files: map[string][]byte{FileServerCert: b.ServerCert, FileServerKey: b.ServerKey}, require: AllFiles(), wantText: "ca.crt: missing"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for n, data := range tc.files {
				must(t, os.WriteFile(filepath.Join(dir, n), data, 0o600))
			}
			s, err := NewSource(context.Background(), Config{Dir: dir, Require: tc.require, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				s.Close()
			}
			if !errors.Is(err, ErrUnusableBundle) || !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("got %v, want ErrUnusableBundle naming %q", err, tc.wantText)
			}
		})
	}
}

// A directory of plain files rewritten in place is a new generation too,
// and a half-written pair is not taken.
func TestSourceTakesPlainFilesRewrittenInPlace(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	dir := t.TempDir()
	for n, data := range filesOf(f.issue(f.ca, "api")) {
		must(t, os.WriteFile(filepath.Join(dir, n), data, 0o600))
	}
	s, rec := openSource(t, dir, func(c *Config) { c.LoadOnce = true })
	next := f.issue(f.ca, "api")
	must(t, os.WriteFile(filepath.Join(dir, FileServerCert), next.ServerCert, 0o600))
	s.look()
	if got := s.Current().ServerFingerprint(); got == leafSHA(t, next.ServerCert) {
		t.Errorf("got the new tls.crt taken beside the old tls.key, want it refused")
	}
	if w := rec.warnings("", ""); len(w) != 1 {
		t.Errorf("got %d warnings for the half-written pair, want 1:\n%s", len(w), rec)
	}
	must(t, os.WriteFile(filepath.Join(dir, FileServerKey), next.ServerKey, 0o600))
	s.look()
	if got, want := s.Current().ServerFingerprint(), leafSHA(t, next.ServerCert); got != want {
		t.Errorf("got %s once the pair is whole, want %s", got, want)
	}
}

func TestSourceClientConfigInProductionNeedsTheClientPair(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	b := f.issue(f.ca, "api")
	dir := t.TempDir()
	for n, data := range map[string][]byte{FileServerCert: b.ServerCert, FileServerKey: b.ServerKey, FileCA: b.CA} {
		must(t, os.WriteFile(filepath.Join(dir, n), data, 0o600))
	}
	prod, _ := openSource(t, dir, func(c *Config) { c.Environment = Production })
	if _, err := prod.ClientConfig("peer"); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("got %v in production without client.crt, want ErrNoClientCert", err)
	}
	dev, _ := openSource(t, dir)
	cfg, err := dev.ClientConfig("peer")
	if err != nil {
		t.Fatalf("got %v in development, want a config that presents no cert", err)
	}
	if cfg.InsecureSkipVerify || cfg.RootCAs == nil {
		t.Errorf("got skip %v roots %v, want verification against ca.crt", cfg.InsecureSkipVerify, cfg.RootCAs != nil)
	}
}

func TestSourceCloseStopsTheWatcher(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	f.publish("api", f.issue(f.ca, "api"))
	s, _ := openSource(t, f.dir("api"))
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("got %v from Close, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("Close did not return within 5s")
	}
	select {
	case <-s.done:
	default:
		t.Errorf("got the watcher still running after Close")
	}
	if err := s.Close(); err != nil {
		t.Errorf("got %v from a second Close, want nil", err)
	}
}

// A connection in flight at a swap misses the swap's closing of idle
// connections; the first request after the swap closes it once idle.
func TestSourceTransportClosesConnectionsTheSwapMissed(t *testing.T) {
	t.Parallel()
	p := newMTLSPair(t)
	client := p.worker.HTTPClient()
	url := "https://" + p.server.addr + "/"
	first, err := getBody(client, url)
	if err != nil {
		t.Fatalf("first request: %v", err)
	}
	p.worker.swaps.Add(1) // a swap whose closing of idle connections came too early for this one
	second, err := getBody(client, url)
	if err != nil {
		t.Fatalf("request after the swap: %v", err)
	}
	if second == first {
		t.Errorf("got %q again, want a new connection after the swap", second)
	}
	third, err := getBody(client, url)
	if err != nil || third != second {
		t.Errorf("got %q (%v), want the new connection pooled again (%q)", third, err, second)
	}
}

// A bundle that is readable and whose keys match, but that is not valid
// now (from another CA, here), is served until the controller replaces
// it: refusing it would turn a bundle the controller heals in seconds into
// a crash loop. The watcher then takes the valid one.
func TestNewSourceServesAStaleBundleUntilAValidOneArrives(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	stale := f.issue(f.ca, "api")
	stale.CA = f.issue(newAuthority(t), "other").CA // leaves no longer chain to ca.crt
	f.publish("api", stale)
	var logs bytes.Buffer
	s, err := NewSource(context.Background(), Config{Dir: f.dir("api"), Poll: 50 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatalf("NewSource with a bundle from another CA: got %v, want it served", err)
	}
	defer s.Close()
	if !strings.Contains(logs.String(), "wrong-ca") {
		t.Errorf("logs: got %q, want one WARN naming wrong-ca", logs.String())
	}
	gen := f.publish("api", f.issue(f.ca, "api"))
	waitFor(t, reloadBudget, func() (bool, string) {
		return s.Current().Generation == gen, "the valid bundle taken; current " + s.Current().Generation
	})
}
