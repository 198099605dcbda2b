package certs_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// BenchmarkWriteBundle measures a durable, atomic publish of a realistic
// five-file bundle (ECDSA-sized PEMs), alternating two contents as a
// rotation would. It is dominated by fsync, so the number depends on the
// filesystem under $TMPDIR; it reports writes/s for capacity planning.
func BenchmarkWriteBundle(b *testing.B) {
	v, err := certs.OpenVolume(filepath.Join(b.TempDir(), "certs"))
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	bundles := []*certs.BundleFiles{benchBundle('a'), benchBundle('b')}
	b.ReportAllocs()
	writes := 0
	for b.Loop() {
		if _, err := v.WriteBundle("web", bundles[writes%2], keepOwner); err != nil {
			b.Fatal(err)
		}
		writes++
	}
	b.ReportMetric(float64(writes)/b.Elapsed().Seconds(), "writes/s")
}

// benchBundle fills a bundle with PEM-sized content: about 700 bytes per
// certificate and 240 per PKCS#8 P-256 key.
func benchBundle(fill byte) *certs.BundleFiles {
	cert, key := bytes.Repeat([]byte{fill}, 700), bytes.Repeat([]byte{fill}, 240)
	return &certs.BundleFiles{ServerCert: cert, ServerKey: key, ClientCert: cert, ClientKey: key, CA: cert}
}
