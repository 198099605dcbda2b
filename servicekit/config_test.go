package servicekit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLocate(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		certsDir string
		dirs     map[string]dirState
		// want is the bundle directory Locate picks.
		want string
	}{
		"should use CRANK_CERTS_DIR itself when it holds a bundle (a subpath mount)": {
			certsDir: "/run/certs", dirs: map[string]dirState{"/run/certs": dirHasBundle}, want: "/run/certs",
		},
		"should treat CRANK_CERTS_DIR as a root when it holds no bundle": {
			certsDir: "/run/certs", dirs: map[string]dirState{"/run/certs": dirExists, "/run/certs/api": dirHasBundle},
			want: "/run/certs/api",
		},
		"should treat an empty CRANK_CERTS_DIR as a root": {
			certsDir: "/run/certs", want: "/run/certs/api",
		},
		"should ignore the default roots when CRANK_CERTS_DIR is set": {
			certsDir: "/run/certs", dirs: map[string]dirState{"/certs/api": dirHasBundle}, want: "/run/certs/api",
		},
		"should prefer /certs/<svc> when it holds a bundle": {
			dirs: map[string]dirState{"/certs/api": dirHasBundle, "/etc/certs/api": dirHasBundle}, want: "/certs/api",
		},
		"should take /etc/certs/<svc> when only it holds a bundle": {
			dirs: map[string]dirState{"/certs/api": dirExists, "/etc/certs/api": dirHasBundle}, want: "/etc/certs/api",
		},
		"should take the first existing dir when none holds a bundle yet": {
			dirs: map[string]dirState{"/etc/certs/api": dirExists}, want: "/etc/certs/api",
		},
		"should default to /certs/<svc> when nothing exists": {want: "/certs/api"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := locate("api", tc.certsDir, func(d string) dirState { return tc.dirs[d] })
			if got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLookDirSeesALinkedBundle(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if got := lookDir(filepath.Join(root, "absent")); got != dirAbsent {
		t.Errorf("got %d for an absent dir, want dirAbsent", got)
	}
	if got := lookDir(root); got != dirExists {
		t.Errorf("got %d for an empty dir, want dirExists", got)
	}
	must(t, os.Symlink("..2026_01_01", filepath.Join(root, dataLink)))
	if got := lookDir(root); got != dirHasBundle {
		t.Errorf("got %d for a dir with a dangling ..data, want dirHasBundle", got)
	}
	caOnly := t.TempDir()
	must(t, os.WriteFile(filepath.Join(caOnly, FileCA), nil, 0o644))
	if got := lookDir(caOnly); got != dirHasBundle {
		t.Errorf("got %d for a dir holding only ca.crt, want dirHasBundle", got)
	}
}

func TestFromEnv(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	env := map[string]string{EnvCertsDir: root, EnvEnvironment: "production"}
	cfg, err := FromEnv("api", func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("FromEnv: %v", err)
	}
	if cfg.Environment != Production {
		t.Errorf("got environment %s, want production", cfg.Environment)
	}
	if got, want := cfg.BundleDir(), filepath.Join(root, "api"); got != want {
		t.Errorf("got bundle dir %s before any bundle, want %s", got, want)
	}
	// The volume's subpath is mounted at CRANK_CERTS_DIR and then filled.
	must(t, os.WriteFile(filepath.Join(root, FileServerCert), nil, 0o600))
	if got := cfg.BundleDir(); got != root {
		t.Errorf("got bundle dir %s once a bundle is there, want %s", got, root)
	}
	for _, bad := range []string{"", "..", "a/b"} {
		if _, err := FromEnv(bad, func(string) string { return "" }); err == nil {
			t.Errorf("got no error for service name %q, want one", bad)
		}
	}
	env[EnvEnvironment] = "staging"
	if _, err := FromEnv("api", func(k string) string { return env[k] }); err == nil {
		t.Errorf("got no error for %s=staging, want one", EnvEnvironment)
	}
}
