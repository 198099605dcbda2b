package certs

import (
	"strings"
	"testing"
)

func TestParseBundle(t *testing.T) {
	t.Parallel()
	auth := memAuthority(fixtureCA(t), nil)
	good := issueFixture(t, auth, auth.active)
	tests := map[string]struct {
		mutate func(b *BundleFiles)
		// wantErrs are substrings the error must contain; none means success.
		wantErrs []string
	}{
		"should parse a freshly issued bundle": {mutate: func(*BundleFiles) {}},
		"should name every missing file": {
			mutate:   func(b *BundleFiles) { b.ServerKey, b.CA = nil, nil },
			wantErrs: []string{"tls.key: missing", "ca.crt: missing"}},
		"should name a corrupt file with its cause": {
			mutate:   func(b *BundleFiles) { b.ClientCert = []byte("x") },
			wantErrs: []string{"client.crt: no CERTIFICATE PEM block found"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := *good
			tc.mutate(&b)
			p, err := ParseBundle(&b)
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("got error %v, want none", err)
				}
				if p.ServerCert == nil || p.ClientCert == nil || p.ServerKey == nil || p.ClientKey == nil || len(p.CAs) != 1 {
					t.Errorf("got %+v, want every field set and one CA", p)
				}
				if !p.CAs[0].Equal(auth.active.Cert) {
					t.Errorf("got CA %q, want the active CA", p.CAs[0].Subject.CommonName)
				}
				return
			}
			if err == nil || p != nil {
				t.Fatalf("got %v, %v; want nil and an error", p, err)
			}
			for _, want := range tc.wantErrs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("got error %q, want it to contain %q", err, want)
				}
			}
		})
	}
	if _, err := ParseBundle(nil); err == nil {
		t.Errorf("ParseBundle(nil): got nil error, want one")
	}
}

func TestParseCertificatesPEM(t *testing.T) {
	t.Parallel()
	a, b := fixtureCA(t), fixtureCA(t)
	tests := map[string]struct {
		in []byte
		// wantN is the number of certificates; 0 means an error containing
		// wantErr is expected.
		wantN   int
		wantErr string
	}{
		"should read one certificate":                     {in: a.CertPEM(), wantN: 1},
		"should read several in order":                    {in: append(a.CertPEM(), b.CertPEM()...), wantN: 2},
		"should skip text that openssl prints before PEM": {in: append([]byte("Certificate:\n    Data: ...\n"), a.CertPEM()...), wantN: 1},
		"should reject empty data":                        {in: nil, wantErr: "no CERTIFICATE PEM block"},
		"should reject a key among certificates":          {in: append(a.CertPEM(), mustKeyPEM(t, a)...), wantErr: `unexpected PEM block "PRIVATE KEY"`},
		"should reject a broken second certificate":       {in: append(a.CertPEM(), truncatedPEM(b.CertPEM())...), wantErr: "parsing certificate 2"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCertificatesPEM(tc.in)
			if tc.wantN == 0 {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(got) != tc.wantN {
				t.Errorf("got %d certificates, error %v; want %d, nil", len(got), err, tc.wantN)
			}
		})
	}
}

func TestParseLeaves(t *testing.T) {
	t.Parallel()
	auth := memAuthority(fixtureCA(t), nil)
	good := issueFixture(t, auth, auth.active)
	want, err := ParseBundle(good)
	if err != nil {
		t.Fatal(err)
	}
	server, client, err := ParseLeaves(good)
	if err != nil || !server.Equal(want.ServerCert) || !client.Equal(want.ClientCert) {
		t.Fatalf("got %v, %v, %v; want ParseBundle's leaves", server, client, err)
	}
	keyless := *good
	keyless.ServerKey, keyless.CA = []byte("not read"), nil
	if _, _, err := ParseLeaves(&keyless); err != nil {
		t.Errorf("with a corrupt key and no ca.crt: got %v, want the leaves alone parsed", err)
	}
	broken := *good
	broken.ServerCert, broken.ClientCert = nil, []byte("x")
	_, _, err = ParseLeaves(&broken)
	for _, want := range []string{"tls.crt: missing", "client.crt: no CERTIFICATE PEM block found"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got error %v, want it to contain %q", err, want)
		}
	}
	if _, _, err := ParseLeaves(nil); err == nil {
		t.Error("ParseLeaves(nil): got nil error")
	}
}
