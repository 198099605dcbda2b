package servicekit

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// found is a problem reduced to what a test asserts exactly.
type found struct {
	code ProblemCode
	file string
}

func foundOf(ps []Problem) []found {
	var out []found
	for _, p := range ps {
		out = append(out, found{p.Code, p.File})
	}
	return out
}

func TestLoadChecksConsistency(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	good := f.issue(f.ca, "api")
	other := f.issue(f.ca, "api")
	foreign := newVolume(t).issue(newAuthority(t), "api")
	successor := newAuthority(t)
	fromSuccessor := f.issue(successor, "api")
	leaf, err := certs.ParseBundle(good)
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	tests := map[string]struct {
		edit func(files map[string][]byte)
		now  time.Time
		// want lists every problem, in order, for the whole bundle;
		// wantLevel is what the usable parts support.
		want      []found
		wantLevel Level
	}{
		"should find nothing wrong with a bundle the controller issued": {
			wantLevel: LevelMTLS,
		},
		"should report a key of another issuance as key-mismatch on tls.key": {
			edit: func(m map[string][]byte) { m[FileServerKey] = other.ServerKey },
			want: []found{{ProblemKeyMismatch, FileServerKey}}, wantLevel: LevelPlain,
		},
		"should report swapped leaves as wrong-usage on both certificates": {
			edit: func(m map[string][]byte) {
				m[FileServerCert], m[FileClientCert] = good.ClientCert, good.ServerCert
				m[FileServerKey], m[FileClientKey] = good.ClientKey, good.ServerKey
			},
			want: []found{{ProblemWrongUsage, FileServerCert}, {ProblemWrongUsage, FileClientCert}}, wantLevel: LevelPlain,
		},
		"should report leaves of a CA that ca.crt does not hold as wrong-ca": {
			edit: func(m map[string][]byte) { m[FileCA] = foreign.CA },
			want: []found{{ProblemWrongCA, FileServerCert}, {ProblemWrongCA, FileClientCert}}, wantLevel: LevelPlain,
		},
		"should accept leaves of the new CA while ca.crt holds the old and the new one": {
			edit: func(m map[string][]byte) {
				for k, v := range filesOf(fromSuccessor) {
					m[k] = v
				}
				m[FileCA] = append(append([]byte{}, good.CA...), fromSuccessor.CA...)
			},
			wantLevel: LevelMTLS,
		},
		"should report an unparsable certificate as corrupt": {
			edit: func(m map[string][]byte) { m[FileServerCert] = []byte("not a certificate\n") },
			want: []found{{ProblemCorrupt, FileServerCert}}, wantLevel: LevelPlain,
		},
		"should report an unparsable trust bundle as corrupt and still serve tls": {
			edit: func(m map[string][]byte) { m[FileCA] = []byte("garbage") },
			want: []found{{ProblemCorrupt, FileCA}}, wantLevel: LevelTLS,
		},
		"should report each absent file as missing": {
			edit: func(m map[string][]byte) { delete(m, FileClientKey); delete(m, FileCA) },
			want: []found{{ProblemMissing, FileClientKey}, {ProblemMissing, FileCA}}, wantLevel: LevelTLS,
		},
		"should report expired leaves": {
			now:  leaf.ServerCert.NotAfter.Add(time.Minute),
			want: []found{{ProblemExpired, FileServerCert}, {ProblemExpired, FileClientCert}}, wantLevel: LevelPlain,
		},
		"should report leaves that are not valid yet": {
			now:  leaf.ServerCert.NotBefore.Add(-time.Minute),
			want: []found{{ProblemNotYetValid, FileServerCert}, {ProblemNotYetValid, FileClientCert}}, wantLevel: LevelPlain,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			files := filesOf(good)
			if tc.edit != nil {
				tc.edit(files)
			}
			dir := t.TempDir()
			for n, data := range files {
				must(t, os.WriteFile(filepath.Join(dir, n), data, 0o600))
			}
			now := tc.now
			if now.IsZero() {
				now = time.Now()
			}
			m, err := Load(dir, now)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if got := foundOf(m.Problems(AllFiles())); !slices.Equal(got, tc.want) {
				t.Errorf("got problems %v, want %v\n%s", got, tc.want, problemsText(m.Problems(AllFiles())))
			}
			if got := m.Level(); got != tc.wantLevel {
				t.Errorf("got level %s, want %s", got, tc.wantLevel)
			}
		})
	}
}

func TestLoadRefusesWhatIsNotAFile(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	dir := t.TempDir()
	for n, data := range filesOf(f.issue(f.ca, "api")) {
		must(t, os.WriteFile(filepath.Join(dir, n), data, 0o600))
	}
	// A directory stands where the key belongs; a FIFO would be refused the
	// same way, before any read could block on it.
	must(t, os.Remove(filepath.Join(dir, FileServerKey)))
	must(t, os.Mkdir(filepath.Join(dir, FileServerKey), 0o700))
	m, err := Load(dir, time.Now())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if got, want := foundOf(m.Problems(AllFiles())), []found{{ProblemUnsafeFile, FileServerKey}}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// Load reads the one generation ..data names, whatever else is in the dir.
func TestLoadReadsTheGenerationDataPointsAt(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	first := f.issue(f.ca, "api")
	gen1 := f.publish("api", first)
	second := f.issue(f.ca, "api")
	gen2 := f.publish("api", second)
	m, err := Load(f.dir("api"), time.Now())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if m.Generation != gen2 || m.Generation == gen1 {
		t.Errorf("got generation %s, want %s", m.Generation, gen2)
	}
	if got, want := m.ServerFingerprint(), leafSHA(t, second.ServerCert); got != want {
		t.Errorf("got server %s, want the second bundle's %s", got, want)
	}
	if ps := m.Problems(AllFiles()); len(ps) != 0 {
		t.Errorf("got problems %s, want none", problemsText(ps))
	}
}

func TestMaterialClientConfigNeverSkipsVerification(t *testing.T) {
	t.Parallel()
	f := newVolume(t)
	b := f.issue(f.ca, "api")
	dir := t.TempDir()
	files := filesOf(b)
	delete(files, FileClientKey)
	for n, data := range files {
		must(t, os.WriteFile(filepath.Join(dir, n), data, 0o600))
	}
	m, err := Load(dir, time.Now())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if _, err := m.ClientConfig("api", true); !errors.Is(err, ErrNoClientCert) {
		t.Errorf("got %v needing a client cert without client.key, want ErrNoClientCert", err)
	}
	cfg, err := m.ClientConfig("api", false)
	if err != nil {
		t.Fatalf("ClientConfig without a client cert: %v", err)
	}
	if cfg.InsecureSkipVerify || cfg.RootCAs == nil || cfg.ServerName != "api" || len(cfg.Certificates) != 0 {
		t.Errorf("got skip %v roots %v name %q certs %d, want verification against ca.crt of api and no cert",
			cfg.InsecureSkipVerify, cfg.RootCAs != nil, cfg.ServerName, len(cfg.Certificates))
	}
	must(t, os.Remove(filepath.Join(dir, FileCA)))
	if m, err = Load(dir, time.Now()); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if _, err := m.ClientConfig("api", false); !errors.Is(err, ErrNoTrustBundle) {
		t.Errorf("got %v without ca.crt, want ErrNoTrustBundle", err)
	}
}
