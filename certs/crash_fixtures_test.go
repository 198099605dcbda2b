package certs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// crashIssuance builds, in memory, a CA and a server and client pair signed
// by it: one issuance, numbered k in every subject.
func crashIssuance(t *testing.T, k int) *certs.BundleFiles {
	t.Helper()
	now := time.Now()
	caKey := crashKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(int64(1000 + k)),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("crash test CA %d", k)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	leaf := func(serial int64, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key := crashKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: fmt.Sprintf("web issuance %d", k)},
			DNSNames:     []string{"web"},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	}
	b := &certs.BundleFiles{CA: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})}
	b.ServerCert, b.ServerKey = leaf(int64(2000+k), x509.ExtKeyUsageServerAuth)
	b.ClientCert, b.ClientKey = leaf(int64(3000+k), x509.ExtKeyUsageClientAuth)
	return b
}

func crashKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
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
