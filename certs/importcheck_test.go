package certs

import (
	"crypto/x509"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

func TestCheckImport(t *testing.T) {
	t.Parallel()
	valid := validAroundT0()
	corp := newCorpPKI(t, "corp")
	other := newCorpPKI(t, "other")
	selfRoot := testpki.NewCA(t, testpki.WithCommonName("own root"), valid)
	strictRoot := testpki.NewCA(t, testpki.WithCommonName("strict root"), valid) // path length 0
	underStrict := strictRoot.NewIntermediate(t, testpki.WithCommonName("under strict"), valid)
	deepRoot := testpki.NewCA(t, testpki.WithCommonName("deep root"), testpki.WithMaxPathLen(1), valid)
	deepMid := deepRoot.NewIntermediate(t, testpki.WithCommonName("deep policy CA"), testpki.WithMaxPathLen(-1), valid)
	deepIssuing := deepMid.NewIntermediate(t, testpki.WithCommonName("deep issuing CA"), valid)
	okRoot := testpki.NewCA(t, testpki.WithCommonName("two-level root"), testpki.WithMaxPathLen(2), valid)
	okMid := okRoot.NewIntermediate(t, testpki.WithCommonName("two-level policy CA"), testpki.WithMaxPathLen(1), valid)
	okIssuing := okMid.NewIntermediate(t, testpki.WithCommonName("two-level issuing CA"), valid)
	zeroMid := okRoot.NewIntermediate(t, testpki.WithCommonName("zero policy CA"), valid)
	zeroIssuing := zeroMid.NewIntermediate(t, testpki.WithCommonName("under zero"), valid)
	notCA := corp.root.NewIntermediate(t, testpki.WithCommonName("leafish"), testpki.NotCA(), valid)
	leafRoot := testpki.NewCA(t, testpki.WithCommonName("not a CA root"), testpki.NotCA(), valid)
	underLeafRoot := leafRoot.NewIntermediate(t, testpki.WithCommonName("under a non-CA"), valid)
	noSign := corp.root.NewIntermediate(t, testpki.WithCommonName("no cert sign"), testpki.WithKeyUsage(x509.KeyUsageDigitalSignature), valid)
	noUsage := corp.root.NewIntermediate(t, testpki.WithCommonName("no key usage"), testpki.WithKeyUsage(0), valid)
	emailOnly := corp.root.NewIntermediate(t, testpki.WithCommonName("email CA"), testpki.WithExtKeyUsage(x509.ExtKeyUsageEmailProtection), valid)
	future := corp.root.NewIntermediate(t, testpki.WithCommonName("future CA"), testpki.WithValidity(t0.Add(time.Hour), t0.Add(365*24*time.Hour)))
	expired := corp.root.NewIntermediate(t, testpki.WithCommonName("expired CA"), testpki.WithValidity(t0.Add(-48*time.Hour), t0.Add(-time.Hour)))
	soon := corp.root.NewIntermediate(t, testpki.WithCommonName("short CA"), testpki.WithValidity(t0.Add(-time.Hour), t0.Add(30*24*time.Hour)))
	shortRoot := testpki.NewCA(t, testpki.WithCommonName("short root"), testpki.WithMaxPathLen(1), testpki.WithValidity(t0.Add(-time.Hour), t0.Add(10*24*time.Hour)))
	underShortRoot := shortRoot.NewIntermediate(t, testpki.WithCommonName("long CA under a short root"), valid)
	expiredRoot := testpki.NewCA(t, testpki.WithCommonName("expired root"), testpki.WithMaxPathLen(1), testpki.WithValidity(t0.Add(-48*time.Hour), t0.Add(-time.Hour)))
	underExpiredRoot := expiredRoot.NewIntermediate(t, testpki.WithCommonName("under an expired root"), valid)

	tests := map[string]struct {
		in ImportInput
		// leafLifetime is ImportOptions.LeafLifetime; zero: the default 90 days.
		leafLifetime time.Duration
		// wantReason is the failed check; "" means the import is accepted.
		wantReason ImportReason
		// wantMessage is a substring of the failure's message.
		wantMessage string
		// wantChain is the accepted CA's Chain (above the certificate).
		wantChain []*x509.Certificate
	}{
		"should accept an intermediate with its root in --chain": {
			in: ImportInput{CertPEM: corp.inter.CertPEM, KeyPEM: corp.inter.KeyPEM, ChainPEM: corp.inter.ParentsPEM()}, wantChain: []*x509.Certificate{corp.root.Cert}},
		"should accept an intermediate whose --cert file holds the full chain": {
			in: ImportInput{CertPEM: corp.inter.ChainPEM(), KeyPEM: corp.inter.KeyPEM}, wantChain: []*x509.Certificate{corp.root.Cert}},
		"should accept a self-signed root without a chain": {
			in: ImportInput{CertPEM: selfRoot.CertPEM, KeyPEM: selfRoot.KeyPEM}},
		"should accept two intermediates given root first, and drop strangers from --chain": {
			in: ImportInput{CertPEM: okIssuing.CertPEM, KeyPEM: okIssuing.KeyPEM,
				ChainPEM: testpki.CertPEM(okRoot.Cert, other.root.Cert, okMid.Cert)},
			wantChain: []*x509.Certificate{okMid.Cert, okRoot.Cert}},
		"should accept a CA without a key usage extension, as Go and OpenSSL do": {
			in: ImportInput{CertPEM: noUsage.CertPEM, KeyPEM: noUsage.KeyPEM, ChainPEM: corp.root.CertPEM}, wantChain: []*x509.Certificate{corp.root.Cert}},
		"should refuse a certificate file that is not PEM": {
			in: ImportInput{CertPEM: []byte("hello"), KeyPEM: corp.inter.KeyPEM}, wantReason: ImportUnreadable, wantMessage: "certificate:"},
		"should refuse a key file that holds a certificate": {
			in: ImportInput{CertPEM: corp.inter.CertPEM, KeyPEM: corp.inter.CertPEM}, wantReason: ImportUnreadable, wantMessage: "private key:"},
		"should refuse a chain file that holds a key": {
			in: ImportInput{CertPEM: corp.inter.CertPEM, KeyPEM: corp.inter.KeyPEM, ChainPEM: corp.root.KeyPEM}, wantReason: ImportUnreadable, wantMessage: "chain:"},
		"should refuse a key of another CA": {
			in: ImportInput{CertPEM: corp.inter.CertPEM, KeyPEM: other.inter.KeyPEM, ChainPEM: corp.root.CertPEM}, wantReason: ImportKeyMismatch, wantMessage: `"corp issuing CA"`},
		"should refuse a certificate without CA:TRUE": {
			in: ImportInput{CertPEM: notCA.CertPEM, KeyPEM: notCA.KeyPEM, ChainPEM: corp.root.CertPEM}, wantReason: ImportNotCA, wantMessage: `certificate "leafish"`},
		"should refuse a chain certificate without CA:TRUE": {
			in: ImportInput{CertPEM: underLeafRoot.CertPEM, KeyPEM: underLeafRoot.KeyPEM, ChainPEM: leafRoot.CertPEM}, wantReason: ImportNotCA, wantMessage: `chain certificate "not a CA root"`},
		"should refuse a CA whose key usage lacks keyCertSign": {
			in: ImportInput{CertPEM: noSign.CertPEM, KeyPEM: noSign.KeyPEM, ChainPEM: corp.root.CertPEM}, wantReason: ImportNoCertSign, wantMessage: "keyCertSign"},
		"should refuse an intermediate without --chain": {
			in: ImportInput{CertPEM: corp.inter.CertPEM, KeyPEM: corp.inter.KeyPEM}, wantReason: ImportChainIncomplete, wantMessage: `issued "corp issuing CA"`},
		"should refuse an intermediate with another PKI's root": {
			in: ImportInput{CertPEM: corp.inter.CertPEM, KeyPEM: corp.inter.KeyPEM, ChainPEM: other.root.CertPEM}, wantReason: ImportChainIncomplete, wantMessage: "--chain"},
		"should refuse a chain that stops below the root": {
			in: ImportInput{CertPEM: okIssuing.CertPEM, KeyPEM: okIssuing.KeyPEM, ChainPEM: okMid.CertPEM}, wantReason: ImportChainIncomplete, wantMessage: `issued "two-level policy CA"`},
		"should refuse an intermediate under a root of path length 0": {
			in: ImportInput{CertPEM: underStrict.CertPEM, KeyPEM: underStrict.KeyPEM, ChainPEM: strictRoot.CertPEM}, wantReason: ImportPathLength, wantMessage: `"strict root" allows 0`},
		"should refuse two intermediates under a root of path length 1": {
			in: ImportInput{CertPEM: deepIssuing.CertPEM, KeyPEM: deepIssuing.KeyPEM, ChainPEM: deepIssuing.ParentsPEM()}, wantReason: ImportPathLength, wantMessage: `"deep root" allows 1 intermediate CA(s) below it (pathlen:1), but 2`},
		"should refuse an intermediate of path length 0 above ours": {
			in: ImportInput{CertPEM: zeroIssuing.CertPEM, KeyPEM: zeroIssuing.KeyPEM, ChainPEM: zeroIssuing.ParentsPEM()}, wantReason: ImportPathLength, wantMessage: `"zero policy CA" allows 0`},
		"should refuse a CA that is not valid yet": {
			in: ImportInput{CertPEM: future.CertPEM, KeyPEM: future.KeyPEM, ChainPEM: corp.root.CertPEM}, wantReason: ImportNotYetValid, wantMessage: "clock"},
		"should refuse an expired CA": {
			in: ImportInput{CertPEM: expired.CertPEM, KeyPEM: expired.KeyPEM, ChainPEM: corp.root.CertPEM}, wantReason: ImportExpired, wantMessage: `certificate "expired CA" expired`},
		"should refuse a CA under an expired root": {
			in: ImportInput{CertPEM: underExpiredRoot.CertPEM, KeyPEM: underExpiredRoot.KeyPEM, ChainPEM: expiredRoot.CertPEM}, wantReason: ImportExpired, wantMessage: `chain certificate "expired root"`},
		"should refuse a CA that expires within a leaf lifetime": {
			in: ImportInput{CertPEM: soon.CertPEM, KeyPEM: soon.KeyPEM, ChainPEM: corp.root.CertPEM}, wantReason: ImportExpiresSoon, wantMessage: "2160h0m0s"},
		"should accept that CA with leaves shorter than what is left of it": {
			in: ImportInput{CertPEM: soon.CertPEM, KeyPEM: soon.KeyPEM, ChainPEM: corp.root.CertPEM}, leafLifetime: 7 * 24 * time.Hour, wantChain: []*x509.Certificate{corp.root.Cert}},
		"should refuse a CA whose root expires within a leaf lifetime": {
			in: ImportInput{CertPEM: underShortRoot.CertPEM, KeyPEM: underShortRoot.KeyPEM, ChainPEM: shortRoot.CertPEM}, wantReason: ImportExpiresSoon, wantMessage: `chain certificate "short root"`},
		"should refuse a CA whose extended key usage forbids TLS leaves": {
			in: ImportInput{CertPEM: emailOnly.CertPEM, KeyPEM: emailOnly.KeyPEM, ChainPEM: corp.root.CertPEM}, wantReason: ImportChainDoesNotVerify, wantMessage: "tls.crt"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ca, err := CheckImport(tc.in, ImportOptions{Now: t0, LeafLifetime: tc.leafLifetime})
			if got := ImportReasonOf(err); got != tc.wantReason {
				t.Fatalf("got reason %q (error %v), want %q", got, err, tc.wantReason)
			}
			if tc.wantReason != "" {
				if !errors.Is(err, ErrInvalidCA) || !strings.Contains(err.Error(), tc.wantMessage) {
					t.Errorf("got error %q, want one wrapping ErrInvalidCA and containing %q", err, tc.wantMessage)
				}
				if ca != nil {
					t.Errorf("got a CA with a failed check, want nil")
				}
				return
			}
			if !ca.Imported || !slices.EqualFunc(ca.Chain, tc.wantChain, (*x509.Certificate).Equal) {
				t.Errorf("got imported=%v chain %s, want imported and chain %s", ca.Imported, certCommonNames(ca.Chain), certCommonNames(tc.wantChain))
			}
		})
	}
}
