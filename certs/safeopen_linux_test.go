package certs

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// openDeadline tells a blocked open from a slow one: an open of a FIFO for
// reading without O_NONBLOCK waits for a writer forever.
const openDeadline = 5 * time.Second

// returnsWithin runs op and fails the test if it has not returned by
// openDeadline. A blocked op is left behind: an open(2) cannot be stopped.
func returnsWithin(t *testing.T, what string, op func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); op() }()
	select {
	case <-done:
	case <-time.After(openDeadline):
		t.Fatalf("%s: still blocked after %v, want it to return", what, openDeadline)
	}
}

// These call the opens directly, skipping openEntry's Lstat, which is how a
// service that swaps an entry right after that Lstat is seen.
func TestOpenNoFollow(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// plant creates the entry "x" in dir.
		plant func(t *testing.T, dir string)
		// wantErr is the errno the open fails with, if any: ELOOP for a
		// symlink it did not follow, ENXIO for a socket.
		wantErr error
		// wantUnsafe is describeUnsafe of the opened file.
		wantUnsafe string
	}{
		"should open a FIFO at once and see it is a FIFO": {
			plant:      func(t *testing.T, dir string) { mustDo(t, syscall.Mkfifo(filepath.Join(dir, "x"), 0o600)) },
			wantUnsafe: "is a FIFO",
		},
		"should not follow a symlink to a file in the same dir": {
			plant: func(t *testing.T, dir string) {
				mustDo(t, os.WriteFile(filepath.Join(dir, "target"), []byte("t"), 0o600))
				mustDo(t, os.Symlink("target", filepath.Join(dir, "x")))
			},
			wantErr: syscall.ELOOP,
		},
		"should not follow a symlink to a FIFO": {
			plant: func(t *testing.T, dir string) {
				mustDo(t, syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o600))
				mustDo(t, os.Symlink("fifo", filepath.Join(dir, "x")))
			},
			wantErr: syscall.ELOOP,
		},
		"should fail at once on a socket": {
			plant: func(t *testing.T, dir string) {
				mustDo(t, syscall.Mknod(filepath.Join(dir, "x"), syscall.S_IFSOCK|0o600, 0))
			},
			wantErr: syscall.ENXIO,
		},
		"should see the second link of a hard-linked file": {
			plant: func(t *testing.T, dir string) {
				mustDo(t, os.WriteFile(filepath.Join(dir, "other"), []byte("o"), 0o600))
				mustDo(t, os.Link(filepath.Join(dir, "other"), filepath.Join(dir, "x")))
			},
			wantUnsafe: "has 2 links",
		},
		"should accept a regular file with one link": {
			plant: func(t *testing.T, dir string) { mustDo(t, os.WriteFile(filepath.Join(dir, "x"), []byte("x"), 0o600)) },
		},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.plant(t, dir)
			root, err := os.OpenRoot(dir)
			mustDo(t, err)
			defer root.Close()
			var f *os.File
			returnsWithin(t, "openNoFollow", func() { f, err = openNoFollow(root, "x") })
			if (tc.wantErr == nil && err != nil) || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("openNoFollow: got error %v, want %v", err, tc.wantErr)
			}
			if f == nil {
				return
			}
			defer f.Close()
			fi, err := f.Stat()
			mustDo(t, err)
			if got := describeUnsafe(fi); got != tc.wantUnsafe {
				t.Errorf("describeUnsafe of the opened file: got %q, want %q", got, tc.wantUnsafe)
			}
		})
	}
}

func TestOpenDirRootRefusesAFIFO(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mustDo(t, os.Mkdir(filepath.Join(dir, "gen"), 0o755))
	root, err := os.OpenRoot(dir)
	mustDo(t, err)
	defer root.Close()
	fi, err := root.Lstat("gen")
	mustDo(t, err)
	// Swapped after the Lstat, as a service owning dir can.
	mustDo(t, os.Remove(filepath.Join(dir, "gen")))
	mustDo(t, syscall.Mkfifo(filepath.Join(dir, "gen"), 0o600))
	var r *os.Root
	returnsWithin(t, "openDirRoot", func() { r, _, err = openDirRoot(root, "gen", fi) })
	if err == nil || r != nil {
		t.Fatalf("openDirRoot of a FIFO: got root %v, error %v; want no root and an error", r, err)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
