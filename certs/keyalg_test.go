package certs

import (
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func TestParseKeyAlgorithm(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in string
		// want is the parsed algorithm; "" means an error wrapping
		// ErrUnknownKeyAlgorithm is expected.
		want KeyAlgorithm
	}{
		"should parse ecdsa-p256":                   {in: "ecdsa-p256", want: ECDSAP256},
		"should parse rsa-2048":                     {in: "rsa-2048", want: RSA2048},
		"should parse rsa-3072":                     {in: "rsa-3072", want: RSA3072},
		"should parse ed25519":                      {in: "ed25519", want: Ed25519},
		"should ignore case and surrounding spaces": {in: "  ECDSA-P256\n", want: ECDSAP256},
		"should reject an empty name":               {in: ""},
		"should reject an unsupported size":         {in: "rsa-1024"},
		"should reject a bare family name":          {in: "ecdsa"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseKeyAlgorithm(tc.in)
			if tc.want == "" {
				if !errors.Is(err, ErrUnknownKeyAlgorithm) || !strings.Contains(err.Error(), "ecdsa-p256, rsa-2048") {
					t.Errorf("got %q, %v; want an ErrUnknownKeyAlgorithm error listing the valid names", got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q, nil", got, err, tc.want)
			}
		})
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	t.Parallel()
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384Key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)
	x25519DER, _ := x509.MarshalPKCS8PrivateKey(x25519)
	ecParams := pem.EncodeToMemory(&pem.Block{Type: "EC PARAMETERS", Bytes: []byte{0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}})
	legacyEncrypted := &pem.Block{Type: pemPKCS1, Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"}, Bytes: []byte{1}}

	tests := map[string]struct {
		in []byte
		// want is the key that must come out; nil means an error containing
		// wantErr is expected.
		want    crypto.Signer
		wantErr string
	}{
		"should read an ECDSA PKCS#8 key":                    {in: keyPEMAs(t, ecKey, pemPKCS8), want: ecKey},
		"should read an ECDSA SEC1 key":                      {in: keyPEMAs(t, ecKey, pemSEC1), want: ecKey},
		"should read a P-384 key":                            {in: keyPEMAs(t, p384Key, pemSEC1), want: p384Key},
		"should skip the EC PARAMETERS block of openssl":     {in: append(ecParams, keyPEMAs(t, ecKey, pemSEC1)...), want: ecKey},
		"should read an RSA PKCS#1 key":                      {in: keyPEMAs(t, rsaKey, pemPKCS1), want: rsaKey},
		"should read an RSA PKCS#8 key":                      {in: keyPEMAs(t, rsaKey, pemPKCS8), want: rsaKey},
		"should read an Ed25519 PKCS#8 key":                  {in: keyPEMAs(t, edKey, pemPKCS8), want: edKey},
		"should ignore text around the PEM block":            {in: append([]byte("Bag Attributes\n"), keyPEMAs(t, ecKey, pemPKCS8)...), want: ecKey},
		"should reject empty data":                           {in: nil, wantErr: "no private key PEM block"},
		"should reject two keys":                             {in: append(keyPEMAs(t, ecKey, pemPKCS8), keyPEMAs(t, edKey, pemPKCS8)...), wantErr: "more than one"},
		"should reject a PKCS#8 encrypted key":               {in: pem.EncodeToMemory(&pem.Block{Type: pemEncryptedPKCS8, Bytes: []byte{1}}), wantErr: "encrypted"},
		"should reject a legacy encrypted key":               {in: pem.EncodeToMemory(legacyEncrypted), wantErr: "encrypted"},
		"should reject an X25519 key, which cannot sign":     {in: pem.EncodeToMemory(&pem.Block{Type: pemPKCS8, Bytes: x25519DER}), wantErr: "unsupported private key type"},
		"should reject a PKCS#1 body under a PKCS#8 label":   {in: relabel(keyPEMAs(t, rsaKey, pemPKCS1), pemPKCS8), wantErr: `parsing "PRIVATE KEY"`},
		"should reject a public key":                         {in: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), wantErr: `unexpected PEM block "PUBLIC KEY"`},
		"should reject a SEC1 label holding garbage":         {in: pem.EncodeToMemory(&pem.Block{Type: pemSEC1, Bytes: []byte("junk")}), wantErr: `parsing "EC PRIVATE KEY"`},
		"should reject an unterminated PEM block as missing": {in: []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n"), wantErr: "no private key PEM block"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePrivateKeyPEM(tc.in)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("got error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !publicKeyMatches(tc.want.Public(), got) {
				t.Errorf("got a different key of type %T, want the input key", got)
			}
		})
	}
}

func relabel(p []byte, label string) []byte {
	block, _ := pem.Decode(p)
	block.Type = label
	return pem.EncodeToMemory(block)
}

func TestMarshalPrivateKeyPEMWritesPKCS8(t *testing.T) {
	t.Parallel()
	for _, alg := range []KeyAlgorithm{ECDSAP256, Ed25519} {
		key, err := generateKey(alg)
		if err != nil {
			t.Fatal(err)
		}
		out, err := MarshalPrivateKeyPEM(key)
		if err != nil {
			t.Fatal(err)
		}
		block, rest := pem.Decode(out)
		if block == nil || block.Type != "PRIVATE KEY" || len(rest) != 0 {
			t.Fatalf("%s: got %q, want exactly one PRIVATE KEY block", alg, out)
		}
		if _, err := x509.ParsePKCS8PrivateKey(block.Bytes); err != nil {
			t.Errorf("%s: got a block that is not PKCS#8: %v", alg, err)
		}
	}
}

func TestLeafKeyUsage(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		alg  KeyAlgorithm
		want x509.KeyUsage // what leaves of this key type must assert
	}{
		"should let ECDSA leaves only sign":                       {alg: ECDSAP256, want: x509.KeyUsageDigitalSignature},
		"should let Ed25519 leaves only sign":                     {alg: Ed25519, want: x509.KeyUsageDigitalSignature},
		"should let RSA leaves sign and encipher for TLS 1.2 kex": {alg: RSA2048, want: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			key, err := generateKey(tc.alg)
			if err != nil {
				t.Fatal(err)
			}
			if got := leafKeyUsage(key.Public()); got != tc.want {
				t.Errorf("got %b, want %b", got, tc.want)
			}
		})
	}
}
