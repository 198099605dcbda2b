package certs_test

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

func TestVolumeWriteBundle(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		owner certs.Owner
		// wantKeyMode is the expected mode of tls.key and client.key.
		wantKeyMode fs.FileMode
	}{
		"should write keys 0600 behind relative symlinks by default":   {owner: keepOwner, wantKeyMode: 0o600},
		"should write keys 0640 when the owner asks for group read":    {owner: certs.Owner{UID: -1, GID: -1, GroupRead: true}, wantKeyMode: 0o640},
		"should leave ownership alone when only the uid is left as is": {owner: certs.Owner{UID: -1, GID: os.Getegid()}, wantKeyMode: 0o600},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			t.Parallel()
			v, dir := newTestVolume(t)
			want := fakeBundle("one")
			gen, err := v.WriteBundle("web", want, tc.owner)
			if err != nil {
				t.Fatalf("WriteBundle: %v", err)
			}
			if !strings.HasPrefix(gen, "..") {
				t.Errorf("generation: got %q, want a ..<timestamp> name", gen)
			}
			serviceDir := filepath.Join(dir, "web")
			wantLayout(t, serviceDir, gen)
			assertSameContent(t, readVisible(t, serviceDir), bundleContent(want))
			assertMode(t, serviceDir, 0o755)
			assertMode(t, filepath.Join(serviceDir, gen), 0o755)
			for _, name := range volumeFileNames {
				wantMode := fs.FileMode(0o644)
				if strings.HasSuffix(name, ".key") {
					wantMode = tc.wantKeyMode
				}
				assertMode(t, filepath.Join(serviceDir, gen, name), wantMode)
			}
		})
	}
}

func TestVolumeWriteBundleReplacesTheOldGeneration(t *testing.T) {
	t.Parallel()
	v, dir := newTestVolume(t)
	first, err := v.WriteBundle("web", fakeBundle("one"), keepOwner)
	if err != nil {
		t.Fatalf("first WriteBundle: %v", err)
	}
	second, err := v.WriteBundle("web", fakeBundle("two"), keepOwner)
	if err != nil {
		t.Fatalf("second WriteBundle: %v", err)
	}
	if first == second {
		t.Fatalf("generations: got %q twice, want distinct names", first)
	}
	serviceDir := filepath.Join(dir, "web")
	wantLayout(t, serviceDir, second)
	assertSameContent(t, readVisible(t, serviceDir), bundleContent(fakeBundle("two")))
}

func TestVolumeWriteBundleRejectsBadInput(t *testing.T) {
	t.Parallel()
	incomplete := fakeBundle("x")
	incomplete.ClientKey = nil
	tests := map[string]struct {
		service string
		bundle  *certs.BundleFiles
		// wantErr is a substring of the expected error.
		wantErr string
	}{
		"should reject a traversing service name": {service: "../etc", bundle: fakeBundle("x"), wantErr: "invalid service name"},
		"should reject a nil bundle":              {service: "web", bundle: nil, wantErr: "nil bundle"},
		"should reject a bundle missing a file":   {service: "web", bundle: incomplete, wantErr: "missing client.key"},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			t.Parallel()
			v, dir := newTestVolume(t)
			_, err := v.WriteBundle(tc.service, tc.bundle, keepOwner)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("WriteBundle: got error %v, want one containing %q", err, tc.wantErr)
			}
			if got := dirNames(t, dir); len(got) != 0 {
				t.Errorf("volume entries after a rejected write: got %q, want none", got)
			}
		})
	}
}

func TestVolumeReadBundle(t *testing.T) {
	t.Parallel()
	v, dir := newTestVolume(t)
	before := time.Now().Add(-2 * time.Second) // filesystem timestamps may be coarse
	gen, err := v.WriteBundle("web", fakeBundle("one"), certs.Owner{UID: -1, GID: -1, GroupRead: true})
	if err != nil {
		t.Fatalf("WriteBundle: %v", err)
	}
	after := time.Now().Add(2 * time.Second)
	got, err := v.ReadBundle("web")
	if err != nil {
		t.Fatalf("ReadBundle: %v", err)
	}
	assertSameContent(t, bundleContent(got), bundleContent(fakeBundle("one")))
	if got.Generation != gen {
		t.Errorf("Generation: got %q, want %q", got.Generation, gen)
	}
	if got.WrittenAt.Before(before) || got.WrittenAt.After(after) {
		t.Errorf("WrittenAt: got %v, want between %v and %v", got.WrittenAt, before, after)
	}
	if got.ServerKeyMode != 0o640 || got.ClientKeyMode != 0o640 {
		t.Errorf("key modes: got %04o and %04o, want 0640 and 0640", got.ServerKeyMode, got.ClientKeyMode)
	}

	// A generation missing a file is returned as is, for Validate to judge.
	if err := os.Remove(filepath.Join(dir, "web", gen, certs.FileClientKey)); err != nil {
		t.Fatal(err)
	}
	got, err = v.ReadBundle("web")
	if err != nil {
		t.Fatalf("ReadBundle of a generation missing client.key: %v", err)
	}
	if got.ClientKey != nil || got.ClientKeyMode != 0 {
		t.Errorf("ClientKey: got %q mode %04o, want nil and 0", got.ClientKey, got.ClientKeyMode)
	}
	if !bytes.Equal(got.ServerKey, fakeBundle("one").ServerKey) {
		t.Errorf("ServerKey: got %q, want the written one", got.ServerKey)
	}
}

func TestVolumeReadBundleReportsAbsence(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		setup func(t *testing.T, v *certs.Volume, dir string)
	}{
		"should report a service that was never written": {
			setup: func(*testing.T, *certs.Volume, string) {},
		},
		"should report a service dir created for a subpath mount but not yet written": {
			setup: func(t *testing.T, v *certs.Volume, _ string) {
				if err := v.EnsureServiceDir("web", keepOwner); err != nil {
					t.Fatal(err)
				}
			},
		},
		"should report a ..data link whose generation is gone": {
			setup: func(t *testing.T, v *certs.Volume, dir string) {
				gen, err := v.WriteBundle("web", fakeBundle("one"), keepOwner)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.RemoveAll(filepath.Join(dir, "web", gen)); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			t.Parallel()
			v, dir := newTestVolume(t)
			tc.setup(t, v, dir)
			_, err := v.ReadBundle("web")
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("ReadBundle: got error %v, want one wrapping fs.ErrNotExist", err)
			}
		})
	}
}

func TestVolumeWriteCA(t *testing.T) {
	t.Parallel()
	v, dir := newTestVolume(t)
	first, err := v.WriteBundle("web", fakeBundle("one"), keepOwner)
	if err != nil {
		t.Fatalf("WriteBundle: %v", err)
	}
	gen, err := v.WriteCA("web", []byte("new trust bundle\n"), keepOwner)
	if err != nil {
		t.Fatalf("WriteCA: %v", err)
	}
	if gen == first {
		t.Errorf("WriteCA generation: got %q, the same as before, want a new one", gen)
	}
	want := bundleContent(fakeBundle("one"))
	want[certs.FileCA] = "new trust bundle\n"
	serviceDir := filepath.Join(dir, "web")
	wantLayout(t, serviceDir, gen)
	assertSameContent(t, readVisible(t, serviceDir), want)
	assertMode(t, filepath.Join(serviceDir, gen, certs.FileServerKey), 0o600)

	if _, err := v.WriteCA("absent", []byte("ca\n"), keepOwner); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteCA for a service without a bundle: got error %v, want one wrapping fs.ErrNotExist", err)
	}
	if err := os.Remove(filepath.Join(serviceDir, gen, certs.FileServerKey)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.WriteCA("web", []byte("ca\n"), keepOwner); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteCA over a bundle missing tls.key: got error %v, want one wrapping fs.ErrNotExist", err)
	}
}

func TestVolumeFixPermissions(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		owner certs.Owner
		// wantKeyMode is the key mode FixPermissions must restore.
		wantKeyMode fs.FileMode
	}{
		"should restore 0600 keys after someone made them world readable": {owner: keepOwner, wantKeyMode: 0o600},
		"should switch keys to 0640 when group read is now wanted":        {owner: certs.Owner{UID: -1, GID: -1, GroupRead: true}, wantKeyMode: 0o640},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			t.Parallel()
			v, dir := newTestVolume(t)
			gen, err := v.WriteBundle("web", fakeBundle("one"), keepOwner)
			if err != nil {
				t.Fatalf("WriteBundle: %v", err)
			}
			genDir := filepath.Join(dir, "web", gen)
			for _, p := range []string{filepath.Join(genDir, certs.FileServerKey), filepath.Join(genDir, certs.FileCA)} {
				if err := os.Chmod(p, 0o666); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(genDir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := v.FixPermissions("web", tc.owner); err != nil {
				t.Fatalf("FixPermissions: %v", err)
			}
			assertMode(t, genDir, 0o755)
			assertMode(t, filepath.Join(genDir, certs.FileServerKey), tc.wantKeyMode)
			assertMode(t, filepath.Join(genDir, certs.FileClientKey), tc.wantKeyMode)
			assertMode(t, filepath.Join(genDir, certs.FileCA), 0o644)
			got, err := v.ReadBundle("web")
			if err != nil {
				t.Fatalf("ReadBundle: %v", err)
			}
			if got.Generation != gen {
				t.Errorf("Generation after FixPermissions: got %q, want %q (no rewrite)", got.Generation, gen)
			}
		})
	}

	t.Run("should report a bundle that does not exist", func(t *testing.T) {
		t.Parallel()
		v, _ := newTestVolume(t)
		if err := v.FixPermissions("web", keepOwner); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("FixPermissions: got error %v, want one wrapping fs.ErrNotExist", err)
		}
	})
}

func TestVolumeOwnership(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("skipping chown assertions: changing ownership to 1234:1234 needs root")
	}
	owner := certs.Owner{UID: 1234, GID: 1234}
	v, dir := newTestVolume(t)
	gen, err := v.WriteBundle("web", fakeBundle("one"), owner)
	if err != nil {
		t.Fatalf("WriteBundle: %v", err)
	}
	serviceDir := filepath.Join(dir, "web")
	paths := []string{serviceDir, filepath.Join(serviceDir, gen)}
	for _, name := range volumeFileNames {
		paths = append(paths, filepath.Join(serviceDir, gen, name))
	}
	for _, p := range paths {
		if uid, gid := ownerOf(t, p); uid != 1234 || gid != 1234 {
			t.Errorf("owner of %s: got %d:%d, want 1234:1234", p, uid, gid)
		}
	}

	// FixPermissions restores ownership someone changed.
	key := filepath.Join(serviceDir, gen, certs.FileServerKey)
	if err := os.Lchown(key, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := v.FixPermissions("web", owner); err != nil {
		t.Fatalf("FixPermissions: %v", err)
	}
	if uid, gid := ownerOf(t, key); uid != 1234 || gid != 1234 {
		t.Errorf("owner of %s after FixPermissions: got %d:%d, want 1234:1234", key, uid, gid)
	}

	// -1 leaves one side alone.
	if err := v.EnsureServiceDir("api", certs.Owner{UID: 1234, GID: -1}); err != nil {
		t.Fatalf("EnsureServiceDir: %v", err)
	}
	if uid, gid := ownerOf(t, filepath.Join(dir, "api")); uid != 1234 || gid != os.Getegid() {
		t.Errorf("owner of api: got %d:%d, want 1234:%d", uid, gid, os.Getegid())
	}
}

func TestVolumeServices(t *testing.T) {
	t.Parallel()
	v, dir := newTestVolume(t)
	for _, s := range []string{"web", "api"} {
		if _, err := v.WriteBundle(s, fakeBundle(s), keepOwner); err != nil {
			t.Fatal(err)
		}
	}
	if err := v.EnsureServiceDir("db", keepOwner); err != nil {
		t.Fatal(err)
	}
	// Entries the controller never made: an invalid name, a file, a symlink.
	if err := os.Mkdir(filepath.Join(dir, "Upper_Case"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("web", filepath.Join(dir, "alias")); err != nil {
		t.Fatal(err)
	}
	got, err := v.Services()
	if err != nil {
		t.Fatalf("Services: %v", err)
	}
	if want := []string{"api", "db", "web"}; !slices.Equal(got, want) {
		t.Errorf("Services: got %q, want %q", got, want)
	}
}

func TestVolumeEnsureServiceDir(t *testing.T) {
	t.Parallel()
	v, dir := newTestVolume(t)
	for range 2 { // idempotent
		if err := v.EnsureServiceDir("web", keepOwner); err != nil {
			t.Fatalf("EnsureServiceDir: %v", err)
		}
	}
	assertMode(t, filepath.Join(dir, "web"), 0o755)
	if err := v.EnsureServiceDir("../x", keepOwner); !errors.Is(err, certs.ErrInvalidServiceName) {
		t.Errorf("EnsureServiceDir(../x): got error %v, want one wrapping ErrInvalidServiceName", err)
	}
}

func TestVolumeRemoveBundle(t *testing.T) {
	t.Parallel()
	v, dir := newTestVolume(t)
	if _, err := v.WriteBundle("web", fakeBundle("one"), keepOwner); err != nil {
		t.Fatal(err)
	}
	if err := v.RemoveBundle("web"); err != nil {
		t.Fatalf("RemoveBundle: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "web")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("service dir after RemoveBundle: got lstat error %v, want fs.ErrNotExist", err)
	}
	if err := v.RemoveBundle("web"); err != nil {
		t.Errorf("RemoveBundle of an absent service: got %v, want nil", err)
	}
}

func TestVolumeDir(t *testing.T) {
	t.Parallel()
	v, dir := newTestVolume(t)
	if got := v.Dir(); got != dir {
		t.Errorf("Dir: got %q, want %q", got, dir)
	}
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		t.Errorf("volume dir: got %v (err %v), want a directory created by OpenVolume", fi, err)
	}
}
