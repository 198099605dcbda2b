//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bundles on disk, as the hostile-tenant scenario reads them from the host
// directory that is every container's /certs, and a watch for what must
// never happen during a scenario.

// tnBundle is what identifies a service's bundle on disk: serials, SANs
// and who owns the keys.
type tnBundle struct {
	ServerSerial, ClientSerial string
	SANs                       []string
	ServerKeyOwner             string // uid:gid of tls.key
	ClientKeyOwner             string // uid:gid of client.key
}

func (b tnBundle) String() string {
	return fmt.Sprintf("server %s client %s SANs %v keys %s/%s",
		b.ServerSerial, b.ClientSerial, b.SANs, b.ServerKeyOwner, b.ClientKeyOwner)
}

// tnReadBundle reads service's visible bundle under the certs root.
func tnReadBundle(certs, service string) (tnBundle, error) {
	var b tnBundle
	dir := filepath.Join(certs, service)
	server, err := tnCert(filepath.Join(dir, "tls.crt"))
	if err != nil {
		return b, err
	}
	client, err := tnCert(filepath.Join(dir, "client.crt"))
	if err != nil {
		return b, err
	}
	b.ServerSerial, b.ClientSerial, b.SANs = server.SerialNumber.String(), client.SerialNumber.String(), server.DNSNames
	if b.ServerKeyOwner, err = tnOwner(filepath.Join(dir, "tls.key")); err != nil {
		return b, err
	}
	if b.ClientKeyOwner, err = tnOwner(filepath.Join(dir, "client.key")); err != nil {
		return b, err
	}
	return b, nil
}

func tnCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return x509.ParseCertificate(block.Bytes)
}

// tnOwner is "uid:gid" of path, following symlinks.
func tnOwner(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", fmt.Errorf("%s: no owner on this platform", path)
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid), nil
}

// tnGeneration is the generation directory ..data points at in dir.
func tnGeneration(dir string) (string, error) {
	gen, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		return "", err
	}
	if !strings.HasPrefix(gen, "..") || strings.Contains(gen, "/") {
		return "", fmt.Errorf("%s/..data points at %q, not a generation", dir, gen)
	}
	return gen, nil
}

// tnOwnedBy lists every entry of dir, its current generation and that
// generation's files whose uid or gid is id. Entries that vanish while it
// looks (a generation swap) are skipped.
func tnOwnedBy(dir string, id uint32) []string {
	var hits []string
	check := func(p string) {
		fi, err := os.Lstat(p)
		if err != nil {
			return
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid == id || st.Gid == id) {
			hits = append(hits, fmt.Sprintf("%s %d:%d", p, st.Uid, st.Gid))
		}
	}
	check(dir)
	gen, err := tnGeneration(dir)
	if err != nil {
		return hits
	}
	check(filepath.Join(dir, gen))
	entries, err := os.ReadDir(filepath.Join(dir, gen))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return append(hits, err.Error())
	}
	for _, e := range entries {
		check(filepath.Join(dir, gen, e.Name()))
	}
	return hits
}

// tnMonitor runs check every period until stopped and keeps what it
// reports: a watch over a whole scenario for something that must never
// happen (the controller not ready, a directory chowned to an attacker).
type tnMonitor struct {
	what    string
	stop    context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	samples int
	bad     []string
}

// tnStartMonitor starts watching; check returns "" while all is well.
func tnStartMonitor(t *testing.T, what string, period time.Duration, check func() string) *tnMonitor {
	ctx, cancel := context.WithCancel(context.Background())
	m := &tnMonitor{what: what, stop: cancel}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			msg := check()
			m.mu.Lock()
			m.samples++
			if msg != "" {
				m.bad = append(m.bad, time.Now().Format("15:04:05.000")+" "+msg)
			}
			m.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(m.Stop)
	return m
}

// Stop ends the watch; safe to call twice.
func (m *tnMonitor) Stop() {
	m.stop()
	m.wg.Wait()
}

// check fails t with every bad sample seen so far.
func (m *tnMonitor) check(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.samples == 0 {
		t.Errorf("%s: got no samples, want the watch to have run", m.what)
	}
	if len(m.bad) > 0 {
		t.Errorf("%s: got %d bad samples of %d, want none; first ones:\n  %s", m.what, len(m.bad), m.samples,
			strings.Join(m.bad[:min(len(m.bad), 10)], "\n  "))
	}
}

// tnLinks is the hard link count of fi.
func tnLinks(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 0
}
