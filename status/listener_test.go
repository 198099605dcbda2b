package status

import (
	"crypto/tls"
	"crypto/x509"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

func newAuthority(t *testing.T) *certs.Authority {
	t.Helper()
	a, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// clientFor is a client presenting a fresh client certificate of a (for
// service), trusting roots.
func clientFor(t *testing.T, a *certs.Authority, service string, roots *x509.CertPool) *http.Client {
	t.Helper()
	b, _, err := a.IssueBundle(certs.Identity{Service: service, DNSNames: []string{service}}, certs.IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(b.ClientCert, b.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func serveTLS(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) }))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestListenerTLS(t *testing.T) {
	t.Parallel()
	ours := newAuthority(t)
	cfg, err := ListenerTLS(ours, []string{"localhost", "127.0.0.1"}, certs.IssueOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ClientAuth != tls.RequireAndVerifyClientCert {
		t.Errorf("ClientAuth: got %v, want RequireAndVerifyClientCert", cfg.ClientAuth)
	}
	srv := serveTLS(t, cfg)

	tests := map[string]struct {
		client *http.Client
		wantOK bool // the request succeeds
	}{
		"should serve a client certificate of our CA": {client: clientFor(t, ours, "operator", ours.TrustPool()), wantOK: true},
		"should refuse a client certificate of another CA": {
			client: clientFor(t, newAuthority(t), "operator", ours.TrustPool()),
		},
		"should refuse a client without a certificate": {
			client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ours.TrustPool()}}},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			resp, err := tc.client.Get(srv.URL)
			if err == nil {
				resp.Body.Close()
			}
			if (err == nil) != tc.wantOK {
				t.Errorf("got error %v, want success %v", err, tc.wantOK)
			}
		})
	}
}

func TestListenerTLSNeedsNames(t *testing.T) {
	t.Parallel()
	if _, err := ListenerTLS(newAuthority(t), nil, certs.IssueOptions{}, time.Now()); err == nil {
		t.Errorf("got no error for a certificate without names, want one")
	}
}

// TestListenerTLSFollowsRollover: after a Promote, a client of the new CA
// is served by the same configuration, without a restart.
// promotedListener serves ListenerTLS of a fresh authority and then rolls
// that authority over to a successor (created and promoted).
func promotedListener(t *testing.T) (*certs.Authority, *httptest.Server) {
	t.Helper()
	a := newAuthority(t)
	cfg, err := ListenerTLS(a, []string{"127.0.0.1"}, certs.IssueOptions{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	srv := serveTLS(t, cfg)
	if _, err := a.CreateSuccessor(time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := a.Promote(); err != nil {
		t.Fatal(err)
	}
	return a, srv
}

func TestListenerTLSFollowsRollover(t *testing.T) {
	t.Parallel()
	a, srv := promotedListener(t)
	resp, err := clientFor(t, a, "operator", a.TrustPool()).Get(srv.URL)
	if err != nil {
		t.Fatalf("client of the promoted CA: got %v, want it served", err)
	}
	resp.Body.Close()
}

// After a retire, operators hold only the new CA: the listener must serve a
// leaf of the new CA by then, not wait 60 days for its own renewal.
func TestListenerTLSServesTheNewCAsLeafAfterRetire(t *testing.T) {
	t.Parallel()
	a, srv := promotedListener(t)
	if err := a.Retire(); err != nil {
		t.Fatal(err)
	}
	onlyNew := x509.NewCertPool()
	onlyNew.AddCert(a.Active().Cert)
	resp, err := clientFor(t, a, "operator", onlyNew).Get(srv.URL)
	if err != nil {
		t.Fatalf("client trusting only the new CA: got %v, want the listener to serve a new-CA leaf", err)
	}
	resp.Body.Close()
}

// TestListenerCredsRenew: the server certificate is reissued once two
// thirds of its lifetime have passed, and not before.
func TestListenerCredsRenew(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clock := now
	lc, err := newListenerCreds(newAuthority(t), []string{"localhost"}, certs.IssueOptions{Lifetime: 90 * time.Hour}, now,
		func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	first := lc.current().Leaf.SerialNumber
	clock = now.Add(59 * time.Hour)
	if got := lc.current().Leaf.SerialNumber; got.Cmp(first) != 0 {
		t.Errorf("at 59h of 90h: got a new certificate, want the first one kept")
	}
	clock = now.Add(61 * time.Hour)
	renewed := lc.current().Leaf
	if renewed.SerialNumber.Cmp(first) == 0 {
		t.Errorf("at 61h of 90h: got the first certificate, want a renewed one")
	}
	if !renewed.NotAfter.After(now.Add(140 * time.Hour)) {
		t.Errorf("renewed NotAfter %v, want about 61h+90h from the start", renewed.NotAfter)
	}
}

func TestWriteOperatorBundle(t *testing.T) {
	t.Parallel()
	a := newAuthority(t)
	dir := filepath.Join(t.TempDir(), "operator")
	if err := WriteOperatorBundle(dir, a, certs.IssueOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	wantModes := map[string]fs.FileMode{".": 0o700, certs.FileClientKey: 0o600, certs.FileClientCert: 0o644, certs.FileCA: 0o644}
	for name, want := range wantModes {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode got %v, want %v", name, got, want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Errorf("dir holds %d entries, want exactly the 3 files (no temporary leftovers)", len(entries))
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certs.FileClientCert), filepath.Join(dir, certs.FileClientKey))
	if err != nil {
		t.Fatalf("client pair: %v", err)
	}
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	if leaf.Subject.CommonName != OperatorIdentity {
		t.Errorf("CN: got %q, want %q", leaf.Subject.CommonName, OperatorIdentity)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: a.TrustPool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("operator certificate does not verify as a client of the CA: %v", err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(dir, certs.FileCA))
	if string(caPEM) != string(a.TrustBundle()) {
		t.Errorf("ca.crt is not the authority's trust bundle")
	}
}

func TestWriteOperatorBundleDir(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// setup prepares the path; wantErr says whether writing must fail.
		setup   func(t *testing.T, dir string)
		wantErr bool
	}{
		"should tighten an existing open directory to 0700": {
			setup: func(t *testing.T, dir string) {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(dir, 0o755); err != nil {
					t.Fatal(err)
				}
			},
		},
		"should replace a previous bundle": {
			setup: func(t *testing.T, dir string) {
				if err := WriteOperatorBundle(dir, newAuthority(t), certs.IssueOptions{}, time.Now()); err != nil {
					t.Fatal(err)
				}
			},
		},
		"should refuse a symlink in place of the directory": {
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink(t.TempDir(), dir); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: true,
		},
		"should refuse a file in place of the directory": {
			setup: func(t *testing.T, dir string) {
				if err := os.WriteFile(dir, nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := newAuthority(t)
			dir := filepath.Join(t.TempDir(), "operator")
			tc.setup(t, dir)
			err := WriteOperatorBundle(dir, a, certs.IssueOptions{}, time.Now())
			if (err != nil) != tc.wantErr {
				t.Fatalf("got error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			fi, _ := os.Stat(dir)
			if fi.Mode().Perm() != 0o700 {
				t.Errorf("dir mode: got %v, want 0700", fi.Mode().Perm())
			}
			caPEM, _ := os.ReadFile(filepath.Join(dir, certs.FileCA))
			if string(caPEM) != string(a.TrustBundle()) {
				t.Errorf("ca.crt is not the new authority's trust bundle")
			}
		})
	}
}
