package certs

import (
	"encoding/pem"
	"strings"
	"testing"
)

// FuzzLoadPEM feeds arbitrary bytes to every PEM and key parsing entry
// point: ParsePrivateKeyPEM, ParseCertificatesPEM, LoadCA (in both slots)
// and Validate (as every bundle file). None may panic; every failure must
// be a non-empty, well-formatted error; every success must round-trip.
func FuzzLoadPEM(f *testing.F) {
	ec := fixtureCA(f)
	ed := fixtureCA(f, withCAAlgorithm(Ed25519))
	ecKey := keyPEMAs(f, ec.Key, pemSEC1)
	seeds := [][]byte{
		nil,
		[]byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"),
		[]byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
		ec.CertPEM(),
		mustKeyPEM(f, ec),
		ecKey,
		truncatedPEM(ec.CertPEM()),
		truncatedPEM(ecKey),
		append(ec.CertPEM(), ecKey...),
		append(pem.EncodeToMemory(&pem.Block{Type: pemECParameters, Bytes: []byte{6, 8, 42, 134, 72, 206, 61, 3, 1, 7}}), ecKey...),
		pem.EncodeToMemory(&pem.Block{Type: pemPKCS1, Headers: map[string]string{"DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}}),
		ed.CertPEM(),
		mustKeyPEM(f, ed),
	}
	for _, s := range seeds {
		f.Add(s)
	}
	auth := memAuthority(ec, nil)
	exp := Expectation{Identity: webIdentity, Authority: auth, KeyMode: 0o600, Now: t0}

	f.Fuzz(func(t *testing.T, data []byte) {
		key, err := ParsePrivateKeyPEM(data)
		checkParseError(t, "ParsePrivateKeyPEM", err)
		if err == nil {
			out, err := MarshalPrivateKeyPEM(key)
			if err != nil {
				t.Fatalf("re-encoding a parsed %T: %v", key, err)
			}
			again, err := ParsePrivateKeyPEM(out)
			if err != nil || !publicKeyMatches(key.Public(), again) {
				t.Fatalf("round trip of a parsed %T: got %v, want the same key", key, err)
			}
		}

		certs, err := ParseCertificatesPEM(data)
		checkParseError(t, "ParseCertificatesPEM", err)
		if err == nil && len(certs) == 0 {
			t.Fatalf("ParseCertificatesPEM: got no certificates and no error")
		}

		for _, pair := range [][2][]byte{{data, data}, {ec.CertPEM(), data}, {data, ecKey}} {
			ca, err := LoadCA(pair[0], pair[1])
			checkParseError(t, "LoadCA", err)
			if err == nil && !publicKeyMatches(ca.Cert.PublicKey, ca.Key) {
				t.Fatalf("LoadCA accepted a key that does not match its certificate")
			}
		}

		b := &BundleFiles{ServerCert: data, ServerKey: data, ClientCert: data, ClientKey: data, CA: data, Generation: "g"}
		for _, fd := range Validate(b, exp) {
			if fd.Reason == "" || fd.Message == "" || strings.Contains(fd.Message, "%!") {
				t.Fatalf("Validate: got malformed finding %+v", fd)
			}
		}
	})
}

// checkParseError fails on an error that would confuse an operator: empty,
// or carrying a formatting mistake.
func checkParseError(t *testing.T, fn string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if msg == "" || strings.Contains(msg, "%!") {
		t.Fatalf("%s: got unclear error %q", fn, msg)
	}
}
