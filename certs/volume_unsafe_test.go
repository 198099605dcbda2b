package certs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// Helpers for the unsafe-file cases of TestVolumeHostileLayouts: a service
// replaces a file in its own generation dir with a FIFO, a device, a
// socket, a symlink, a directory or a hard link.

// blockDeadline tells a blocked call from a slow one. A read that opens a
// planted FIFO waits for a writer that never comes, so any bound works;
// this one is generous so that a loaded machine never trips it.
const blockDeadline = 5 * time.Second

// withinDeadline runs op and fails the test if op has not returned by
// blockDeadline. On failure the goroutine running op is left behind,
// blocked: there is no way to interrupt an open(2).
func withinDeadline(t *testing.T, what string, op func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); op() }()
	select {
	case <-done:
	case <-time.After(blockDeadline):
		t.Fatalf("%s: still blocked after %v, want it to return", what, blockDeadline)
	}
}

// readWeb reads web's bundle, failing if ReadBundle blocks or errors.
func readWeb(t *testing.T, e *hostileEnv) *certs.BundleFiles {
	t.Helper()
	var got *certs.BundleFiles
	var err error
	withinDeadline(t, "ReadBundle", func() { got, err = e.v.ReadBundle("web") })
	if err != nil {
		t.Fatalf("ReadBundle: %v", err)
	}
	return got
}

// unsafeMessages returns the messages of b's unsafe-file findings, in order.
func unsafeMessages(b *certs.BundleFiles) []string {
	var msgs []string
	for _, f := range certs.Validate(b, certs.Expectation{}) {
		if f.Reason == certs.ReasonUnsafeFile {
			msgs = append(msgs, f.Message)
		}
	}
	return msgs
}

// foreignOwner is an owner that differs from every file the tests create,
// so a chown or chmod that reaches the wrong file shows in a snapshot. Only
// root can chown; other users still see the chmod to 0640.
func foreignOwner() certs.Owner {
	if os.Geteuid() == 0 {
		return certs.Owner{UID: 4242, GID: 4242, GroupRead: true}
	}
	return certs.Owner{UID: -1, GID: -1, GroupRead: true}
}

// plantInGeneration writes web's bundle and replaces name in its generation
// dir with whatever plant creates at the given path.
func plantInGeneration(name string, plant func(t *testing.T, path string)) func(t *testing.T, e *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		gen, err := e.v.WriteBundle("web", fakeBundle("web"), keepOwner)
		must(t, err)
		p := filepath.Join(e.web, gen, name)
		must(t, os.Remove(p))
		plant(t, p)
	}
}

// unsafeRepaired asserts that web's bundle reports exactly want as unsafe
// files, that FixPermissions and WriteCA refuse to work on it, and that a
// fresh WriteBundle replaces it. Nothing may block on the planted entries.
func unsafeRepaired(want ...string) func(t *testing.T, e *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		t.Helper()
		if got := unsafeMessages(readWeb(t, e)); !slices.Equal(got, want) {
			t.Errorf("unsafe-file findings: got %q, want %q", got, want)
		}
		var err error
		withinDeadline(t, "FixPermissions", func() { err = e.v.FixPermissions("web", foreignOwner()) })
		if !errors.Is(err, certs.ErrUnsafeFile) {
			t.Errorf("FixPermissions: got error %v, want one wrapping ErrUnsafeFile", err)
		}
		withinDeadline(t, "WriteCA", func() { _, err = e.v.WriteCA("web", []byte("ca"), keepOwner) })
		if !errors.Is(err, certs.ErrUnsafeFile) || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("WriteCA: got error %v, want one wrapping ErrUnsafeFile and fs.ErrNotExist", err)
		}
		withinDeadline(t, "WriteBundle", func() { writeRecovers(t, e) })
	}
}

// TestReadBundleNeverBlocksOnASwappedFIFO races ReadBundle against a service
// that keeps swapping tls.key between a regular file and a FIFO, so that some
// swaps land between any check and the open that follows it.
func TestReadBundleNeverBlocksOnASwappedFIFO(t *testing.T) {
	t.Parallel()
	e := newHostileEnv(t)
	gen, err := e.v.WriteBundle("web", fakeBundle("web"), keepOwner)
	must(t, err)
	key := filepath.Join(e.web, gen, certs.FileServerKey)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go swapFIFO(key, stop, stopped)
	defer func() { close(stop); <-stopped }()
	for i := range 5000 {
		withinDeadline(t, fmt.Sprintf("ReadBundle %d", i), func() { _, err = e.v.ReadBundle("web") })
		if err != nil {
			t.Fatalf("ReadBundle %d: got error %v, want an unsafe or missing tls.key at worst", i, err)
		}
	}
}

// swapFIFO renames a FIFO, then a regular file, over path until stop closes.
func swapFIFO(path string, stop <-chan struct{}, stopped chan<- struct{}) {
	defer close(stopped)
	tmp := path + ".swap"
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		if i%2 == 0 {
			_ = syscall.Mkfifo(tmp, 0o600)
		} else {
			_ = os.WriteFile(tmp, []byte("server key web\n"), 0o600)
		}
		_ = os.Rename(tmp, path)
	}
}
