package certs

import (
	"crypto/x509"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// validateWorld is the setting of one Validate case: an authority whose
// active CA issued a fresh bundle at t0, plus CAs for the odd cases.
type validateWorld struct {
	active    *CA // issuing CA of auth
	retiring  *CA // trusted by auth but no longer issuing
	stranger  *CA // trusted by nobody
	successor *CA // created by a rollover option
	sibling   *CA // another intermediate of the imported CA's root (withImportedActive)
	auth      *Authority
	bundle    *BundleFiles // nil after withNoBundle
	exp       Expectation
}

// worldOption adjusts a validateWorld before Validate runs.
type worldOption func(t *testing.T, w *validateWorld)

func newValidateWorld(t *testing.T, opts ...worldOption) *validateWorld {
	t.Helper()
	w := &validateWorld{
		active:   fixtureCA(t, withCACommonName("active")),
		retiring: fixtureCA(t, withCACommonName("retiring")),
		stranger: fixtureCA(t, withCACommonName("stranger")),
	}
	w.auth = memAuthority(w.active, nil, w.retiring.Cert)
	w.bundle = issueFixture(t, w.auth, w.active)
	w.exp = Expectation{Identity: webIdentity, Authority: w.auth, Now: t0.Add(time.Hour)}
	for _, o := range opts {
		o(t, w)
	}
	return w
}

// issueFixture issues a bundle for webIdentity at t0, signed by signer but
// carrying auth's trust bundle.
func issueFixture(t *testing.T, auth *Authority, signer *CA) *BundleFiles {
	t.Helper()
	b, _, err := issueBundle(signer, auth.trustCerts(), webIdentity, IssueOptions{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withNoBundle() worldOption { return func(_ *testing.T, w *validateWorld) { w.bundle = nil } }

// withFile replaces one bundle file's content (nil removes it).
func withFile(name string, data []byte) worldOption {
	return func(_ *testing.T, w *validateWorld) {
		switch name {
		case FileServerCert:
			w.bundle.ServerCert = data
		case FileServerKey:
			w.bundle.ServerKey = data
		case FileClientCert:
			w.bundle.ClientCert = data
		case FileClientKey:
			w.bundle.ClientKey = data
		case FileCA:
			w.bundle.CA = data
		}
	}
}

// withUnsafe marks name as found unsafe on disk, as ReadBundle does: no
// content, and an entry in Unsafe.
func withUnsafe(name, what string) worldOption {
	return func(t *testing.T, w *validateWorld) {
		withFile(name, nil)(t, w)
		w.bundle.Unsafe = append(w.bundle.Unsafe, UnsafeFile{Name: name, What: what})
	}
}

// withLeavesFrom re-issues both leaves with signer, keeping ca.crt.
func withLeavesFrom(pick func(w *validateWorld) *CA) worldOption {
	return func(t *testing.T, w *validateWorld) {
		b := issueFixture(t, w.auth, pick(w))
		w.bundle.ServerCert, w.bundle.ServerKey, w.bundle.ClientCert, w.bundle.ClientKey = b.ServerCert, b.ServerKey, b.ClientCert, b.ClientKey
	}
}

func withSwappedLeaves() worldOption {
	return func(_ *testing.T, w *validateWorld) {
		b := w.bundle
		b.ServerCert, b.ClientCert = b.ClientCert, b.ServerCert
		b.ServerKey, b.ClientKey = b.ClientKey, b.ServerKey
	}
}

// withSuccessor starts a rollover after the bundle was issued.
func withSuccessor() worldOption {
	return func(t *testing.T, w *validateWorld) {
		w.successor = fixtureCA(t, withCACommonName("successor"))
		w.auth.successor = w.successor
	}
}

// withImportedActive makes an imported intermediate the issuing CA, its
// root the trust anchor, and reissues the bundle from it. sibling is
// another intermediate of the same root.
func withImportedActive() worldOption {
	return func(t *testing.T, w *validateWorld) {
		corp := newCorpPKI(t, "corp")
		w.active = corp.importedCA(t)
		sibling := corp.root.NewIntermediate(t, testpki.WithCommonName("corp sibling CA"), validAroundT0())
		w.sibling = &CA{Cert: sibling.Cert, Key: sibling.Key, Chain: sibling.Parents}
		w.auth = memAuthority(w.active, nil, w.retiring.Cert)
		w.bundle = issueFixture(t, w.auth, w.active)
		w.exp.Authority = w.auth
	}
}

// withLeafAlone cuts the intermediates from tls.crt, leaving the leaf.
func withLeafAlone() worldOption {
	return func(t *testing.T, w *validateWorld) {
		w.bundle.ServerCert = encodeCertsPEM([]*x509.Certificate{mustParseCert(t, w.bundle.ServerCert)})
	}
}

func withNow(d time.Duration) worldOption {
	return func(_ *testing.T, w *validateWorld) { w.exp.Now = t0.Add(d) }
}

// withLifetimeElapsed sets Now to the given fraction of the leaves' lifetime.
func withLifetimeElapsed(fraction float64) worldOption {
	return func(t *testing.T, w *validateWorld) {
		c := mustParseCert(t, w.bundle.ServerCert)
		w.exp.Now = c.NotBefore.Add(time.Duration(fraction * float64(c.NotAfter.Sub(c.NotBefore))))
	}
}

func withExpectation(f func(e *Expectation)) worldOption {
	return func(_ *testing.T, w *validateWorld) { f(&w.exp) }
}

// withKeyModes marks the bundle as read from disk with these key modes.
func withKeyModes(server, client fs.FileMode) worldOption {
	return func(_ *testing.T, w *validateWorld) {
		w.bundle.Generation = "..2026_11_29_12_00_00.0123456789ab"
		w.bundle.ServerKeyMode, w.bundle.ClientKeyMode = server, client
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	other := newCorpPKI(t, "other")
	otherPKI := &CA{Cert: other.inter.Cert, Key: other.inter.Key, Chain: other.inter.Parents}
	sansIdentity := func(names ...string) worldOption {
		return withExpectation(func(e *Expectation) { e.Identity.DNSNames = names })
	}
	tests := map[string]struct {
		opts []worldOption
		// want lists the findings as "reason file", in the order Validate
		// must return them; empty means the bundle is good.
		want []string
		// wantReissue is NeedsReissue of the findings.
		wantReissue bool
	}{
		"should find nothing wrong with a freshly issued bundle": {},
		"should report one missing finding when there is no bundle at all": {
			opts: []worldOption{withNoBundle()}, want: []string{"missing "}, wantReissue: true},
		"should report missing for each absent or empty file": {
			opts: []worldOption{withFile(FileServerKey, nil), withFile(FileCA, []byte{})},
			want: []string{"missing tls.key", "missing ca.crt"}, wantReissue: true},
		"should report unsafe-file, not missing, for a file found as a FIFO or a hard link": {
			opts: []worldOption{withUnsafe(FileServerKey, "is a FIFO"), withUnsafe(FileCA, "has 2 links")},
			want: []string{"unsafe-file tls.key", "unsafe-file ca.crt"}, wantReissue: true},
		"should report unsafe-file before the bad permissions of the other key": {
			opts: []worldOption{withUnsafe(FileClientKey, "is a symlink"), withKeyModes(0o644, 0),
				withExpectation(func(e *Expectation) { e.KeyMode = 0o600 })},
			want: []string{"unsafe-file client.key", "bad-permissions tls.key"}, wantReissue: true},
		"should report corrupt for a certificate file that is not PEM": {
			opts: []worldOption{withFile(FileClientCert, []byte("garbage"))},
			want: []string{"corrupt client.crt"}, wantReissue: true},
		"should report corrupt for a truncated key and skip its pair check": {
			opts: []worldOption{func(t *testing.T, w *validateWorld) { w.bundle.ServerKey = truncatedPEM(w.bundle.ServerKey) }},
			want: []string{"corrupt tls.key"}, wantReissue: true},
		"should report key-mismatch when tls.key belongs to the client certificate": {
			opts: []worldOption{func(_ *testing.T, w *validateWorld) { w.bundle.ServerKey = w.bundle.ClientKey }},
			want: []string{"key-mismatch tls.key"}, wantReissue: true},
		"should report wrong-ca when the leaves come from a CA nobody trusts": {
			opts: []worldOption{withLeavesFrom(func(w *validateWorld) *CA { return w.stranger })},
			want: []string{"wrong-ca tls.crt", "wrong-ca client.crt"}, wantReissue: true},
		"should report wrong-issuer when the leaves come from a retiring CA": {
			opts: []worldOption{withLeavesFrom(func(w *validateWorld) *CA { return w.retiring })},
			want: []string{"wrong-issuer tls.crt", "wrong-issuer client.crt"}, wantReissue: true},
		"should report san-mismatch when the server cert lacks a new network alias": {
			opts: []worldOption{sansIdentity("web", "api.internal", "localhost")},
			want: []string{"san-mismatch tls.crt"}, wantReissue: true},
		"should report san-mismatch when an expected IP is only a DNS name": {
			opts: []worldOption{sansIdentity("10.0.0.7")},
			want: []string{"san-mismatch tls.crt"}, wantReissue: true},
		"should accept a server cert with more names than expected": {
			opts: []worldOption{sansIdentity("LOCALHOST", "127.0.0.1")}},
		"should report san-mismatch when the client cert names another service": {
			opts: []worldOption{withExpectation(func(e *Expectation) { e.Identity.Service = "api" })},
			want: []string{"san-mismatch client.crt"}, wantReissue: true},
		"should report san-mismatch when the client URI has another trust domain": {
			opts: []worldOption{withExpectation(func(e *Expectation) { e.Identity.TrustDomain = "prod.example" })},
			want: []string{"san-mismatch client.crt"}, wantReissue: true},
		"should report san-mismatch and wrong-usage when server and client certs are swapped": {
			opts: []worldOption{withSwappedLeaves()},
			want: []string{"san-mismatch tls.crt", "san-mismatch client.crt", "wrong-usage tls.crt", "wrong-usage client.crt"}, wantReissue: true},
		"should report expired after NotAfter": {
			opts: []worldOption{withNow(91 * 24 * time.Hour)},
			want: []string{"expired tls.crt", "expired client.crt"}, wantReissue: true},
		"should report not-yet-valid before the backdated NotBefore": {
			opts: []worldOption{withNow(-6 * time.Minute)},
			want: []string{"not-yet-valid tls.crt", "not-yet-valid client.crt"}, wantReissue: true},
		"should accept a bundle within the 5 minute backdate": {
			opts: []worldOption{withNow(-4 * time.Minute)}},
		"should report renew-due when 70% of the lifetime has passed": {
			opts: []worldOption{withLifetimeElapsed(0.70)},
			want: []string{"renew-due tls.crt", "renew-due client.crt"}, wantReissue: true},
		"should not report renew-due when 60% of the lifetime has passed": {
			opts: []worldOption{withLifetimeElapsed(0.60)}},
		"should honour a custom renew fraction": {
			opts: []worldOption{withLifetimeElapsed(0.55), withExpectation(func(e *Expectation) { e.RenewFraction = 0.5 })},
			want: []string{"renew-due tls.crt", "renew-due client.crt"}, wantReissue: true},
		"should report trust-bundle-stale when ca.crt lacks the new successor, without reissuing": {
			opts: []worldOption{withSuccessor()},
			want: []string{"trust-bundle-stale ca.crt"}},
		"should accept ca.crt holding the trusted CAs in another order": {
			opts: []worldOption{func(_ *testing.T, w *validateWorld) {
				w.bundle.CA = encodeCertsPEM([]*x509.Certificate{w.retiring.Cert, w.active.Cert, w.active.Cert})
			}}},
		"should report bad-permissions for a group-readable key on disk, without reissuing": {
			opts: []worldOption{withKeyModes(0o640, 0o600), withExpectation(func(e *Expectation) { e.KeyMode = 0o600 })},
			want: []string{"bad-permissions tls.key"}},
		"should report bad-permissions for a key on disk with mode 0000": {
			opts: []worldOption{withKeyModes(0o600, 0), withExpectation(func(e *Expectation) { e.KeyMode = 0o600 })},
			want: []string{"bad-permissions client.key"}},
		"should not check permissions of a bundle that was never on disk": {
			opts: []worldOption{withExpectation(func(e *Expectation) { e.KeyMode = 0o600 })}},
		"should not check permissions when no key mode is expected": {
			opts: []worldOption{withKeyModes(0o644, 0o644)}},
		"should skip the authority checks without an authority": {
			opts: []worldOption{withLeavesFrom(func(w *validateWorld) *CA { return w.stranger }), withSuccessor(),
				withExpectation(func(e *Expectation) { e.Authority = nil })}},
		"should find nothing wrong with a bundle of an imported intermediate, its chain in the leaf files": {
			opts: []worldOption{withImportedActive()}},
		"should report wrong-ca when tls.crt lacks the intermediate a peer needs to reach the root": {
			opts: []worldOption{withImportedActive(), withLeafAlone()},
			want: []string{"wrong-ca tls.crt"}, wantReissue: true},
		"should report wrong-ca for leaves of an intermediate whose root is not trusted": {
			opts: []worldOption{withImportedActive(), withLeavesFrom(func(*validateWorld) *CA { return otherPKI })},
			want: []string{"wrong-ca tls.crt", "wrong-ca client.crt"}, wantReissue: true},
		"should report wrong-issuer for leaves of a sibling intermediate under the trusted root": {
			opts: []worldOption{withImportedActive(), withLeavesFrom(func(w *validateWorld) *CA { return w.sibling })},
			want: []string{"wrong-issuer tls.crt", "wrong-issuer client.crt"}, wantReissue: true},
		"should report every failing check in order": {
			opts: []worldOption{withSuccessor(), withNow(100 * 24 * time.Hour), withKeyModes(0o644, 0o600),
				withExpectation(func(e *Expectation) { e.KeyMode = 0o600 }), sansIdentity("db")},
			want:        []string{"san-mismatch tls.crt", "expired tls.crt", "expired client.crt", "trust-bundle-stale ca.crt", "bad-permissions tls.key"},
			wantReissue: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := newValidateWorld(t, tc.opts...)
			findings := Validate(w.bundle, w.exp)
			var got []string
			for _, f := range findings {
				got = append(got, string(f.Reason)+" "+f.File)
				if f.Message == "" {
					t.Errorf("finding %s has no message", f)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got findings %q, want %q\n%s", got, tc.want, findingLines(findings))
			}
			if gotReissue := NeedsReissue(findings); gotReissue != tc.wantReissue {
				t.Errorf("got NeedsReissue %v, want %v", gotReissue, tc.wantReissue)
			}
			var m Validator
			for i := range 2 { // found, then remembered where it may be
				if got := m.Validate(w.bundle, w.exp); !slices.Equal(got, findings) {
					t.Errorf("Validator, call %d: got\n%swant\n%s", i+1, findingLines(got), findingLines(findings))
				}
			}
		})
	}
}

func findingLines(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\t" + f.String() + "\n")
	}
	return b.String()
}

func TestFindingString(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   Finding
		want string // the rendered line
	}{
		"should prefix the file":              {in: Finding{Reason: ReasonExpired, File: FileServerCert, Message: "m"}, want: "tls.crt: expired: m"},
		"should omit an empty file":           {in: Finding{Reason: ReasonMissing, Message: "no bundle"}, want: "missing: no bundle"},
		"should keep the message as it comes": {in: Finding{Reason: ReasonCorrupt, File: FileCA, Message: "a: b"}, want: "ca.crt: corrupt: a: b"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := tc.in.String(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestReasons(t *testing.T) {
	t.Parallel()
	fs := []Finding{{Reason: ReasonExpired, File: "a"}, {Reason: ReasonRenewDue}, {Reason: ReasonExpired, File: "b"}}
	if got, want := Reasons(fs), []Reason{ReasonExpired, ReasonRenewDue}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := Reasons(nil); len(got) != 0 {
		t.Errorf("got %v for no findings, want none", got)
	}
}

func TestNeedsReissue(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in   []Reason
		want bool // whether only a new bundle fixes these reasons
	}{
		"should not reissue a good bundle":                      {},
		"should only rewrite ca.crt for a stale trust bundle":   {in: []Reason{ReasonTrustBundleStale}},
		"should only chmod for bad permissions":                 {in: []Reason{ReasonBadPermissions}},
		"should not reissue for both cheap fixes together":      {in: []Reason{ReasonTrustBundleStale, ReasonBadPermissions}},
		"should reissue when anything else comes along":         {in: []Reason{ReasonBadPermissions, ReasonRenewDue}, want: true},
		"should reissue for wrong-issuer after a Promote":       {in: []Reason{ReasonWrongIssuer}, want: true},
		"should reissue for the wrong-usage extension reason":   {in: []Reason{ReasonWrongUsage}, want: true},
		"should reissue when a file is missing from the volume": {in: []Reason{ReasonMissing}, want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var fs []Finding
			for _, r := range tc.in {
				fs = append(fs, Finding{Reason: r})
			}
			if got := NeedsReissue(fs); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRenewAt(t *testing.T) {
	t.Parallel()
	// Issued at t0 for 90h, backdated by the usual 5 minutes.
	c := &x509.Certificate{NotBefore: t0.Add(-clockSkew), NotAfter: t0.Add(90 * time.Hour)}
	short := &x509.Certificate{NotBefore: t0.Add(-clockSkew), NotAfter: t0.Add(2 * time.Minute)}
	tests := map[string]struct {
		cert     *x509.Certificate
		fraction float64
		want     time.Time // issuance + fraction of the lifetime, backdate not counted
	}{
		"should default to two thirds":          {cert: c, fraction: 0, want: t0.Add(60 * time.Hour)},
		"should use a given fraction":           {cert: c, fraction: 0.5, want: t0.Add(45 * time.Hour)},
		"should default for a fraction above 1": {cert: c, fraction: 1.5, want: t0.Add(60 * time.Hour)},
		"should default for a negative one":     {cert: c, fraction: -1, want: t0.Add(60 * time.Hour)},
		"should allow renewing only at the end": {cert: c, fraction: 1, want: t0.Add(90 * time.Hour)},
		// The backdate once counted as lifetime: a 2-minute leaf was due 20s
		// before it was issued, and reissued in a loop.
		"should renew a 2-minute leaf 80s after issuance, not before it": {cert: short, fraction: 0, want: t0.Add(80 * time.Second)},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := RenewAt(tc.cert, tc.fraction); !got.Equal(tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
