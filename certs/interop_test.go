package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// These tests prove that what IssueBundle writes works with real TLS
// stacks: OpenSSL's verifier, Go's crypto/tls and curl. They run against
// the real clock, since curl and OpenSSL cannot be given ours.

// requireTool returns the path of an external tool. A missing tool fails
// the test in CI (CI=true), where skipping would hide a lost proof, and
// skips it on a developer machine.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found in PATH, and CI=true: install %s in the CI image, this interop proof must run there", name, name)
	}
	t.Skipf("skipping: %s not found in PATH; install %s to run this interop test (it is mandatory when CI=true)", name, name)
	return ""
}

// runTool runs name with args and returns its combined output.
func runTool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// writeBundleDir writes b's files into a new directory, like a service's
// directory on the volume, and returns it.
func writeBundleDir(t *testing.T, b *BundleFiles) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		FileServerCert: b.ServerCert, FileServerKey: b.ServerKey,
		FileClientCert: b.ClientCert, FileClientKey: b.ClientKey, FileCA: b.CA,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// liveBundle issues a bundle for "web" from a fresh in-memory CA, valid
// around the real current time.
func liveBundle(t *testing.T, caAlg, leafAlg KeyAlgorithm) (*Authority, *BundleFiles) {
	t.Helper()
	ca, err := NewCA("interop CA "+string(caAlg), caAlg, 24*time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a := memAuthority(ca, nil)
	b, _, err := a.IssueBundle(Identity{Service: "web", DNSNames: []string{"web", "localhost", "127.0.0.1"}}, IssueOptions{KeyAlgorithm: leafAlg})
	if err != nil {
		t.Fatal(err)
	}
	return a, b
}

// interopAlgorithms covers every leaf algorithm under the default CA, and
// every CA algorithm signing leaves of its own kind.
var interopAlgorithms = map[string]struct{ ca, leaf KeyAlgorithm }{
	"ecdsa-p256 leaves from an ecdsa-p256 CA": {ECDSAP256, ECDSAP256},
	"rsa-2048 leaves from an ecdsa-p256 CA":   {ECDSAP256, RSA2048},
	"rsa-3072 leaves from an ecdsa-p256 CA":   {ECDSAP256, RSA3072},
	"ed25519 leaves from an ecdsa-p256 CA":    {ECDSAP256, Ed25519},
	"rsa-2048 leaves from an rsa-2048 CA":     {RSA2048, RSA2048},
	"ed25519 leaves from an ed25519 CA":       {Ed25519, Ed25519},
}

func TestInteropOpenSSLVerify(t *testing.T) {
	t.Parallel()
	openssl := requireTool(t, "openssl")
	for name, algs := range interopAlgorithms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, b := liveBundle(t, algs.ca, algs.leaf)
			opensslVerify(t, openssl, writeBundleDir(t, b))
		})
	}
}

// opensslVerify checks the files in dir with `openssl verify`, including
// that the purposes are not interchangeable.
func opensslVerify(t *testing.T, openssl, dir string) {
	t.Helper()
	ca := filepath.Join(dir, FileCA)
	for _, tc := range []struct {
		purpose, file string
		wantOK        bool
	}{
		{"sslserver", FileServerCert, true},
		{"sslclient", FileClientCert, true},
		{"sslserver", FileClientCert, false},
		{"sslclient", FileServerCert, false},
	} {
		out, err := runTool(t, openssl, "verify", "-CAfile", ca, "-purpose", tc.purpose, filepath.Join(dir, tc.file))
		ok := err == nil && strings.Contains(out, ": OK")
		if ok != tc.wantOK {
			t.Errorf("openssl verify -purpose %s %s: got ok=%v (%v), want ok=%v\n%s", tc.purpose, tc.file, ok, err, tc.wantOK, out)
		}
	}
}

// TestInteropOperatorCAFromOpenSSL loads CAs the way an operator makes them
// with OpenSSL (PKCS#1 RSA, SEC1 EC with an EC PARAMETERS block, PKCS#8
// Ed25519; no key identifiers at all), issues from them and lets OpenSSL
// verify the result.
func TestInteropOperatorCAFromOpenSSL(t *testing.T) {
	t.Parallel()
	openssl := requireTool(t, "openssl")
	tests := map[string]struct {
		genKey []string // openssl arguments writing the key to "-out KEY"
	}{
		"should use an RSA CA with a PKCS#1 key":         {genKey: []string{"genrsa", "-traditional", "-out", "KEY", "2048"}},
		"should use an EC CA with a SEC1 key and params": {genKey: []string{"ecparam", "-name", "prime256v1", "-genkey", "-out", "KEY"}},
		"should use an Ed25519 CA with a PKCS#8 key":     {genKey: []string{"genpkey", "-algorithm", "ED25519", "-out", "KEY"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			state := t.TempDir()
			keyPath, certPath := filepath.Join(state, "ca.key"), filepath.Join(state, "ca.crt")
			args := slices.Clone(tc.genKey)
			args[slices.Index(args, "KEY")] = keyPath
			if out, err := runTool(t, openssl, args...); err != nil {
				t.Fatalf("openssl %v: %v\n%s", args, err, out)
			}
			out, err := runTool(t, openssl, "req", "-x509", "-key", keyPath, "-subj", "/CN=operator CA", "-days", "30",
				"-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
				"-addext", "subjectKeyIdentifier=none", "-addext", "authorityKeyIdentifier=none", "-out", certPath)
			if err != nil {
				t.Fatalf("openssl req -x509: %v\n%s", err, out)
			}
			a, created, err := OpenAuthority(state, AuthorityOptions{}, time.Now())
			if err != nil || created {
				t.Fatalf("got created=%v err=%v, want the operator CA loaded", created, err)
			}
			b, _, err := a.IssueBundle(Identity{Service: "web", DNSNames: []string{"web"}}, IssueOptions{})
			if err != nil {
				t.Fatal(err)
			}
			want, _ := subjectKeyID(a.Active().Cert.PublicKey)
			if got := mustParseCert(t, b.ServerCert).AuthorityKeyId; !slices.Equal(got, want) {
				t.Errorf("got AuthorityKeyId %x for a CA without SubjectKeyId, want %x derived from its key", got, want)
			}
			opensslVerify(t, openssl, writeBundleDir(t, b))
		})
	}
}

// startMTLSServer serves https with the bundle's server certificate,
// requiring a client certificate that chains to trustPEM. The handler
// answers with the client certificate's URI SAN.
func startMTLSServer(t *testing.T, b *BundleFiles, trustPEM []byte) *httptest.Server {
	t.Helper()
	cert, err := tls.X509KeyPair(b.ServerCert, b.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(trustPEM) {
		t.Fatal("trust bundle holds no certificates")
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, r.TLS.PeerCertificates[0].URIs[0].String())
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected here
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// mtlsGet fetches the server's root as a client presenting b's client
// certificate (nil b: none), trusting trustPEM, verifying the name
// "localhost". It never skips verification.
func mtlsGet(t *testing.T, srv *httptest.Server, b *BundleFiles, trustPEM []byte) (string, error) {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(trustPEM) {
		t.Fatal("trust bundle holds no certificates")
	}
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if b != nil {
		cert, err := tls.X509KeyPair(b.ClientCert, b.ClientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	resp, err := client.Get(srv.URL)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("got status %s", resp.Status)
	}
	return string(body), err
}

func TestInteropGoTLSRequiresTheIssuedClientCert(t *testing.T) {
	t.Parallel()
	for name, algs := range interopAlgorithms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, b := liveBundle(t, algs.ca, algs.leaf)
			srv := startMTLSServer(t, b, b.CA)
			got, err := mtlsGet(t, srv, b, b.CA)
			if want := "spiffe://crank.local/service/web"; err != nil || got != want {
				t.Errorf("with the client cert: got %q, %v; want %q, nil", got, err, want)
			}
			_, err = mtlsGet(t, srv, nil, b.CA)
			// crypto/tls does not export its alert type for TCP connections;
			// "remote error" is the Op it uses for an alert from the peer.
			var opErr *net.OpError
			if !errors.As(err, &opErr) || opErr.Op != "remote error" || !strings.Contains(opErr.Err.Error(), "certificate required") {
				t.Errorf("without a client cert: got %v, want the server's certificate_required alert", err)
			}
		})
	}
}

func TestInteropCurl(t *testing.T) {
	t.Parallel()
	curl := requireTool(t, "curl")
	for _, alg := range []KeyAlgorithm{ECDSAP256, RSA2048, Ed25519} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			_, b := liveBundle(t, ECDSAP256, alg)
			srv := startMTLSServer(t, b, b.CA)
			dir := writeBundleDir(t, b)
			u, err := url.Parse(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			port := u.Port()
			target := "https://localhost:" + port + "/"
			base := []string{"--silent", "--show-error", "--fail", "--max-time", "10", "--noproxy", "*",
				// Pin localhost to the listener's address: the name stays
				// localhost (it is what the certificate must match), but
				// curl cannot wander off to ::1.
				"--resolve", "localhost:" + port + ":127.0.0.1",
				"--cacert", filepath.Join(dir, FileCA)}
			out, err := runTool(t, curl, append(base, "--cert", filepath.Join(dir, FileClientCert), "--key", filepath.Join(dir, FileClientKey), target)...)
			if want := "spiffe://crank.local/service/web"; err != nil || out != want {
				t.Errorf("curl with the client cert: got %q, %v; want %q", out, err, want)
			}
			if out, err := runTool(t, curl, append(base, target)...); err == nil {
				t.Errorf("curl without a client cert: got success %q, want a refused handshake", out)
			}
		})
	}
}

// TestInteropRolloverOverlap proves the point of the overlap: while both
// CAs are in every trust bundle, a peer with an old-CA certificate and a
// peer with a new-CA certificate accept each other, in both directions.
// Without the overlap they would not.
func TestInteropRolloverOverlap(t *testing.T) {
	t.Parallel()
	a, _, err := OpenAuthority(t.TempDir(), AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id := Identity{Service: "web", DNSNames: []string{"web", "localhost"}}
	oldBundle, _, err := a.IssueBundle(id, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateSuccessor(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	newBundle, _, err := a.IssueBundle(id, IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	overlap := a.TrustBundle()
	if n := strings.Count(string(overlap), "BEGIN CERTIFICATE"); n != 2 {
		t.Fatalf("got %d CAs in the overlap trust bundle, want 2", n)
	}
	tests := map[string]struct {
		server, client *BundleFiles
		trust          []byte
		wantOK         bool // whether the mTLS request must succeed
	}{
		"should let an old-CA client reach a new-CA server during the overlap": {server: newBundle, client: oldBundle, trust: overlap, wantOK: true},
		"should let a new-CA client reach an old-CA server during the overlap": {server: oldBundle, client: newBundle, trust: overlap, wantOK: true},
		"should refuse an old-CA client once only the new CA is trusted":       {server: newBundle, client: oldBundle, trust: a.Active().CertPEM()},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := startMTLSServer(t, tc.server, tc.trust)
			_, err := mtlsGet(t, srv, tc.client, tc.trust)
			if (err == nil) != tc.wantOK {
				t.Errorf("got error %v, want success=%v", err, tc.wantOK)
			}
		})
	}
	if err := a.Retire(); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(a.TrustBundle()), "BEGIN CERTIFICATE"); n != 1 {
		t.Errorf("after Retire: got a trust bundle of %d CAs, want 1", n)
	}
}
