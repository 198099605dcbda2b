package servicekit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// reloadBudget is how long a published bundle may take to reach new
// handshakes.
const reloadBudget = 2 * time.Second

// volumeFixture is a certs volume written by the controller's own writer,
// with a CA of its own, all in a temp dir: no PEM fixtures to expire.
type volumeFixture struct {
	t    *testing.T
	root string
	vol  *certs.Volume
	ca   *certs.Authority
}

type fixtureOption func(*volumeFixture)

// withAuthority issues from ca instead of a fresh CA.
func newVolume(t *testing.T, opts ...fixtureOption) *volumeFixture {
	t.Helper()
	root := t.TempDir()
	vol, err := certs.OpenVolume(root)
	if err != nil {
		t.Fatalf("opening volume: %v", err)
	}
	t.Cleanup(func() { vol.Close() })
	f := &volumeFixture{t: t, root: root, vol: vol}
	for _, o := range opts {
		o(f)
	}
	if f.ca == nil {
		f.ca = newAuthority(t)
	}
	return f
}

func newAuthority(t *testing.T) *certs.Authority {
	t.Helper()
	ca, _, err := certs.OpenAuthority(t.TempDir(), certs.AuthorityOptions{}, time.Now())
	if err != nil {
		t.Fatalf("opening authority: %v", err)
	}
	return ca
}

// dir is service's bundle directory.
func (f *volumeFixture) dir(service string) string { return filepath.Join(f.root, service) }

// issue returns a fresh bundle for service from ca, valid for 127.0.0.1.
func (f *volumeFixture) issue(ca *certs.Authority, service string) *certs.BundleFiles {
	f.t.Helper()
	b, _, err := ca.IssueBundle(certs.Identity{Service: service, DNSNames: []string{service, "localhost", "127.0.0.1"}},
		certs.IssueOptions{Lifetime: time.Hour})
	if err != nil {
		f.t.Fatalf("issuing for %s: %v", service, err)
	}
	return b
}

// publish writes b as service's bundle with the AtomicWriter steps and
// returns the new generation.
func (f *volumeFixture) publish(service string, b *certs.BundleFiles) string {
	f.t.Helper()
	gen, err := f.vol.WriteBundle(service, b, certs.Owner{UID: -1, GID: -1})
	if err != nil {
		f.t.Fatalf("publishing %s: %v", service, err)
	}
	return gen
}

// publishRaw swaps in a generation holding exactly files, the way the
// writer does (generation dir, ..data_tmp renamed over ..data), so a test
// can publish what the writer refuses to: an incomplete bundle.
func (f *volumeFixture) publishRaw(service string, files map[string][]byte) string {
	f.t.Helper()
	dir := f.dir(service)
	gen := fmt.Sprintf("..%s.raw%d", time.Now().UTC().Format("2006_01_02_15_04_05.000000000"), time.Now().UnixNano())
	must(f.t, os.Mkdir(filepath.Join(dir, gen), 0o755))
	for name, data := range files {
		must(f.t, os.WriteFile(filepath.Join(dir, gen, name), data, 0o600))
	}
	tmp := filepath.Join(dir, "..data_tmp")
	_ = os.Remove(tmp)
	must(f.t, os.Symlink(gen, tmp))
	must(f.t, os.Rename(tmp, filepath.Join(dir, dataLink)))
	return gen
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// filesOf is b as a map of file name to content.
func filesOf(b *certs.BundleFiles) map[string][]byte {
	return map[string][]byte{FileServerCert: b.ServerCert, FileServerKey: b.ServerKey,
		FileClientCert: b.ClientCert, FileClientKey: b.ClientKey, FileCA: b.CA}
}

// leafSHA is the hex SHA-256 of the first certificate in certPEM.
func leafSHA(t *testing.T, certPEM []byte) string {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatalf("no PEM block")
	}
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

func certSHA(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// waitFor polls cond until it holds or deadline passes. Tests wait on a
// condition, never on a fixed sleep.
func waitFor(t *testing.T, deadline time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	var why string
	for time.Since(start) < deadline {
		var ok bool
		if ok, why = cond(); ok {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("not within %s: %s", deadline, why)
	return 0
}

// logRecorder is a slog.Handler that keeps every record as text.
type logRecorder struct {
	mu    sync.Mutex
	lines []recordedLine
}

type recordedLine struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	l := recordedLine{level: rec.Level, msg: rec.Message, attrs: map[string]string{}}
	rec.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
	return nil
}

func (r *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &sharedRecorder{root: r, attrs: as}
}

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

// warnings returns the WARN lines whose attribute key has value.
func (r *logRecorder) warnings(key, value string) []recordedLine {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recordedLine
	for _, l := range r.lines {
		if l.level == slog.LevelWarn && (key == "" || l.attrs[key] == value) {
			out = append(out, l)
		}
	}
	return out
}

func (r *logRecorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b bytes.Buffer
	for _, l := range r.lines {
		fmt.Fprintf(&b, "%s %s %v\n", l.level, l.msg, l.attrs)
	}
	return strings.TrimSpace(b.String())
}

// sharedRecorder is a logRecorder with attributes, writing to the root's lines.
type sharedRecorder struct {
	root  *logRecorder
	attrs []slog.Attr
}

func (s *sharedRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (s *sharedRecorder) Handle(ctx context.Context, rec slog.Record) error {
	rec = rec.Clone()
	rec.AddAttrs(s.attrs...)
	return s.root.Handle(ctx, rec)
}

func (s *sharedRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &sharedRecorder{root: s.root, attrs: append(append([]slog.Attr{}, s.attrs...), as...)}
}

func (s *sharedRecorder) WithGroup(string) slog.Handler { return s }
