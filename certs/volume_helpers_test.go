package certs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// keepOwner leaves ownership as created (the test's own user).
var keepOwner = certs.Owner{UID: -1, GID: -1}

var volumeFileNames = []string{certs.FileServerCert, certs.FileServerKey, certs.FileClientCert, certs.FileClientKey, certs.FileCA}

// newTestVolume opens a volume in a fresh directory (not yet existing, so
// OpenVolume's MkdirAll is exercised) and returns it with its directory.
func newTestVolume(t *testing.T) (*certs.Volume, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	v, err := certs.OpenVolume(dir)
	if err != nil {
		t.Fatalf("OpenVolume(%s): %v", dir, err)
	}
	t.Cleanup(func() { v.Close() })
	return v, dir
}

// fakeBundle returns a bundle whose every file names tag, so a test can tell
// which write a file came from. The volume does not parse PEM.
func fakeBundle(tag string) *certs.BundleFiles {
	return &certs.BundleFiles{
		ServerCert: []byte("server cert " + tag + "\n"),
		ServerKey:  []byte("server key " + tag + "\n"),
		ClientCert: []byte("client cert " + tag + "\n"),
		ClientKey:  []byte("client key " + tag + "\n"),
		CA:         []byte("ca " + tag + "\n"),
	}
}

// bundleContent maps file name to content, for comparisons.
func bundleContent(b *certs.BundleFiles) map[string]string {
	return map[string]string{
		certs.FileServerCert: string(b.ServerCert), certs.FileServerKey: string(b.ServerKey),
		certs.FileClientCert: string(b.ClientCert), certs.FileClientKey: string(b.ClientKey),
		certs.FileCA: string(b.CA),
	}
}

// readVisible reads the five files the way a container does: plain paths
// through the visible symlinks.
func readVisible(t *testing.T, serviceDir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, name := range volumeFileNames {
		data, err := os.ReadFile(filepath.Join(serviceDir, name))
		if err != nil {
			t.Fatalf("reading visible %s: %v", name, err)
		}
		got[name] = string(data)
	}
	return got
}

func assertSameContent(t *testing.T, got, want map[string]string) {
	t.Helper()
	for _, name := range volumeFileNames {
		if got[name] != want[name] {
			t.Errorf("%s: got %q, want %q", name, got[name], want[name])
		}
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s: got %04o, want %04o", path, got, want)
	}
}

// dirNames lists a directory's entries, sorted.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("reading dir %s: %v", dir, err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// wantLayout asserts that serviceDir holds exactly ..data -> gen, gen, and
// the five visible relative links: no leftovers from earlier writes.
func wantLayout(t *testing.T, serviceDir, gen string) {
	t.Helper()
	want := append([]string{"..data", gen}, volumeFileNames...)
	slices.Sort(want)
	if got := dirNames(t, serviceDir); !slices.Equal(got, want) {
		t.Errorf("entries of %s: got %q, want %q", serviceDir, got, want)
	}
	if got, err := os.Readlink(filepath.Join(serviceDir, "..data")); err != nil || got != gen {
		t.Errorf("..data: got %q (err %v), want %q", got, err, gen)
	}
	for _, name := range volumeFileNames {
		if got, err := os.Readlink(filepath.Join(serviceDir, name)); err != nil || got != "..data/"+name {
			t.Errorf("visible %s: got link %q (err %v), want %q", name, got, err, "..data/"+name)
		}
	}
}

// ownerOf returns path's uid and gid without following a symlink.
func ownerOf(t *testing.T, path string) (uid, gid int) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatalf("lstat %s: %v", path, err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return int(st.Uid), int(st.Gid)
}

// must fails the test on a set-up error.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
