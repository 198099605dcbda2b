package certs_test

import (
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// crashIssuance builds, in memory, a CA and a server and client pair signed
// by it: one issuance, numbered k in every subject.
func crashIssuance(t *testing.T, k int) *certs.BundleFiles {
	t.Helper()
	ca := testpki.NewCA(t, testpki.WithCommonName(fmt.Sprintf("crash test CA %d", k)))
	leaf := func(usage x509.ExtKeyUsage) *testpki.Pair {
		return ca.Issue(t, testpki.WithCommonName(fmt.Sprintf("web issuance %d", k)),
			testpki.WithDNSNames("web"), testpki.WithExtKeyUsage(usage))
	}
	server, client := leaf(x509.ExtKeyUsageServerAuth), leaf(x509.ExtKeyUsageClientAuth)
	return &certs.BundleFiles{
		ServerCert: server.CertPEM, ServerKey: server.KeyPEM,
		ClientCert: client.CertPEM, ClientKey: client.KeyPEM,
		CA: ca.CertPEM,
	}
}

// saveCrashBundles writes each bundle to <dir>/<k>/<file> for the writer
// subprocess; they exist only for the test run.
func saveCrashBundles(t *testing.T, bundles []*certs.BundleFiles) string {
	t.Helper()
	dir := t.TempDir()
	for k, b := range bundles {
		for name, content := range bundleContent(b) {
			p := filepath.Join(dir, strconv.Itoa(k), name)
			must(t, os.MkdirAll(filepath.Dir(p), 0o700))
			must(t, os.WriteFile(p, []byte(content), 0o600))
		}
	}
	return dir
}

func loadCrashBundles(t *testing.T, dir string) []*certs.BundleFiles {
	t.Helper()
	bundles := make([]*certs.BundleFiles, crashBundleCount)
	for k := range bundles {
		read := func(name string) []byte {
			data, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(k), name))
			if err != nil {
				t.Fatalf("loading bundle %d: %v", k, err)
			}
			return data
		}
		bundles[k] = &certs.BundleFiles{
			ServerCert: read(certs.FileServerCert), ServerKey: read(certs.FileServerKey),
			ClientCert: read(certs.FileClientCert), ClientKey: read(certs.FileClientKey),
			CA: read(certs.FileCA),
		}
	}
	return bundles
}
