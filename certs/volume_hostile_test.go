package certs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// hostileEnv is a volume next to an "outside" directory holding secrets the
// controller must never read, write, chmod or delete.
type hostileEnv struct {
	v       *certs.Volume
	root    string // the volume
	outside string // sibling of root, laid out like a bundle generation
	web     string // root/web, the service under attack
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	base := t.TempDir()
	e := &hostileEnv{root: filepath.Join(base, "certs"), outside: filepath.Join(base, "outside")}
	e.web = filepath.Join(e.root, "web")
	for _, name := range volumeFileNames {
		must(t, os.MkdirAll(filepath.Join(e.outside, "..2020_01_01_00_00_00.0"), 0o700))
		must(t, os.WriteFile(filepath.Join(e.outside, name), []byte("OUTSIDE "+name), 0o600))
		must(t, os.WriteFile(filepath.Join(e.outside, "..2020_01_01_00_00_00.0", name), []byte("OUTSIDE GEN "+name), 0o600))
	}
	v, err := certs.OpenVolume(e.root)
	must(t, err)
	t.Cleanup(func() { v.Close() })
	e.v = v
	return e
}

// snapshot describes every entry under dir without following symlinks:
// type, mode, owner and content or link target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(data)
		}
		out[p] = desc
		return nil
	})
	must(t, err)
	return out
}

// writeRecovers asserts that a fresh WriteBundle succeeds and leaves a clean,
// readable layout: the hostile entries were replaced, not followed.
func writeRecovers(t *testing.T, e *hostileEnv) {
	t.Helper()
	want := fakeBundle("recovered")
	gen, err := e.v.WriteBundle("web", want, keepOwner)
	if err != nil {
		t.Fatalf("WriteBundle over the hostile layout: %v", err)
	}
	wantLayout(t, e.web, gen)
	assertSameContent(t, readVisible(t, e.web), bundleContent(want))
	got, err := e.v.ReadBundle("web")
	if err != nil {
		t.Fatalf("ReadBundle after recovery: %v", err)
	}
	assertSameContent(t, bundleContent(got), bundleContent(want))
	if msgs := unsafeMessages(got); len(msgs) > 0 {
		t.Errorf("unsafe files after recovery: got %q, want none", msgs)
	}
}

// readIsAbsent asserts ReadBundle treats the layout as no bundle.
func readIsAbsent(t *testing.T, e *hostileEnv) {
	t.Helper()
	b, err := e.v.ReadBundle("web")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadBundle: got %v, %v, want an error wrapping fs.ErrNotExist", b, err)
	}
}

// everythingRefused asserts every operation on web fails with ErrUnsafePath.
func everythingRefused(t *testing.T, e *hostileEnv) {
	t.Helper()
	ops := map[string]func() error{
		"ReadBundle":       func() error { _, err := e.v.ReadBundle("web"); return err },
		"WriteBundle":      func() error { _, err := e.v.WriteBundle("web", fakeBundle("x"), keepOwner); return err },
		"WriteCA":          func() error { _, err := e.v.WriteCA("web", []byte("ca"), keepOwner); return err },
		"FixPermissions":   func() error { return e.v.FixPermissions("web", keepOwner) },
		"EnsureServiceDir": func() error { return e.v.EnsureServiceDir("web", keepOwner) },
	}
	for _, name := range slices.Sorted(maps.Keys(ops)) {
		if err := ops[name](); !errors.Is(err, certs.ErrUnsafePath) {
			t.Errorf("%s: got error %v, want one wrapping ErrUnsafePath", name, err)
		}
	}
}

func TestVolumeHostileLayouts(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// setup plants the hostile layout.
		setup func(t *testing.T, e *hostileEnv)
		// check exercises the volume; the outside tree is compared after it.
		check func(t *testing.T, e *hostileEnv)
	}{
		"should not read through ..data pointing at /etc": {
			setup: func(t *testing.T, e *hostileEnv) {
				must(t, os.Mkdir(e.web, 0o755))
				must(t, os.Symlink("/etc", filepath.Join(e.web, "..data")))
			},
			check: readIsAbsent, // read-only: never write near the real /etc
		},
		"should neither read nor write through ..data pointing at an absolute outside dir": {
			setup: func(t *testing.T, e *hostileEnv) {
				must(t, os.Mkdir(e.web, 0o755))
				must(t, os.Symlink(e.outside, filepath.Join(e.web, "..data")))
			},
			check: func(t *testing.T, e *hostileEnv) {
				readIsAbsent(t, e)
				if err := e.v.FixPermissions("web", keepOwner); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("FixPermissions: got error %v, want one wrapping fs.ErrNotExist", err)
				}
				if _, err := e.v.WriteCA("web", []byte("ca"), keepOwner); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("WriteCA: got error %v, want one wrapping fs.ErrNotExist", err)
				}
				writeRecovers(t, e)
			},
		},
		"should not follow ..data with a relative path escaping the volume": {
			setup: func(t *testing.T, e *hostileEnv) {
				must(t, os.Mkdir(e.web, 0o755))
				must(t, os.Symlink("../../outside/..2020_01_01_00_00_00.0", filepath.Join(e.web, "..data")))
			},
			check: func(t *testing.T, e *hostileEnv) { readIsAbsent(t, e); writeRecovers(t, e) },
		},
		"should not read another service's keys through ..data": {
			setup: func(t *testing.T, e *hostileEnv) {
				gen, err := e.v.WriteBundle("api", fakeBundle("api"), keepOwner)
				must(t, err)
				must(t, os.Mkdir(e.web, 0o755))
				must(t, os.Symlink("../api/"+gen, filepath.Join(e.web, "..data")))
			},
			check: func(t *testing.T, e *hostileEnv) { readIsAbsent(t, e); writeRecovers(t, e) },
		},
		"should not follow a generation name that is itself a symlink out": {
			setup: func(t *testing.T, e *hostileEnv) {
				must(t, os.Mkdir(e.web, 0o755))
				must(t, os.Symlink(filepath.Join(e.outside, "..2020_01_01_00_00_00.0"), filepath.Join(e.web, "..2020_01_01_00_00_00.0")))
				must(t, os.Symlink("..2020_01_01_00_00_00.0", filepath.Join(e.web, "..data")))
			},
			check: func(t *testing.T, e *hostileEnv) {
				readIsAbsent(t, e)
				if err := e.v.FixPermissions("web", certs.Owner{UID: -1, GID: -1, GroupRead: true}); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("FixPermissions: got error %v, want one wrapping fs.ErrNotExist", err)
				}
				writeRecovers(t, e) // and cleanup unlinks the symlink without emptying its target
			},
		},
		"should refuse a service dir that is a symlink to /": {
			setup: func(t *testing.T, e *hostileEnv) { must(t, os.Symlink("/", e.web)) },
			check: func(t *testing.T, e *hostileEnv) {
				// Read-only here: a regression must not be able to write into /.
				if _, err := e.v.ReadBundle("web"); !errors.Is(err, certs.ErrUnsafePath) {
					t.Errorf("ReadBundle: got error %v, want one wrapping ErrUnsafePath", err)
				}
			},
		},
		"should refuse every operation on a service dir that is a symlink out of the volume": {
			setup: func(t *testing.T, e *hostileEnv) { must(t, os.Symlink(e.outside, e.web)) },
			check: func(t *testing.T, e *hostileEnv) {
				everythingRefused(t, e)
				if got, err := e.v.Services(); err != nil || len(got) != 0 {
					t.Errorf("Services: got %q (err %v), want none", got, err)
				}
				if err := e.v.RemoveBundle("web"); err != nil {
					t.Fatalf("RemoveBundle: %v", err)
				}
				if _, err := os.Lstat(e.web); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("web after RemoveBundle: got lstat error %v, want the link gone", err)
				}
			},
		},
		"should refuse a service dir that is a symlink to another service": {
			setup: func(t *testing.T, e *hostileEnv) {
				_, err := e.v.WriteBundle("api", fakeBundle("api"), keepOwner)
				must(t, err)
				must(t, os.Symlink("api", e.web))
			},
			check: func(t *testing.T, e *hostileEnv) {
				everythingRefused(t, e)
				got, err := e.v.ReadBundle("api")
				if err != nil {
					t.Fatalf("ReadBundle(api): %v", err)
				}
				assertSameContent(t, bundleContent(got), bundleContent(fakeBundle("api")))
			},
		},
		"should replace visible names that point outside or are directories": {
			setup: func(t *testing.T, e *hostileEnv) {
				_, err := e.v.WriteBundle("web", fakeBundle("old"), keepOwner)
				must(t, err)
				must(t, os.Remove(filepath.Join(e.web, certs.FileServerKey)))
				must(t, os.Symlink(filepath.Join(e.outside, certs.FileServerKey), filepath.Join(e.web, certs.FileServerKey)))
				must(t, os.Remove(filepath.Join(e.web, certs.FileCA)))
				must(t, os.MkdirAll(filepath.Join(e.web, certs.FileCA, "sub"), 0o755))
				must(t, os.Remove(filepath.Join(e.web, certs.FileClientCert)))
				must(t, os.WriteFile(filepath.Join(e.web, certs.FileClientCert), []byte("legacy regular file"), 0o644))
			},
			check: writeRecovers,
		},
		"should unlink stale generations and ..data_tmp that point outside without following them": {
			setup: func(t *testing.T, e *hostileEnv) {
				_, err := e.v.WriteBundle("web", fakeBundle("old"), keepOwner)
				must(t, err)
				must(t, os.Symlink(e.outside, filepath.Join(e.web, "..2019_01_01_00_00_00.0")))
				must(t, os.Symlink(e.outside, filepath.Join(e.web, "..data_tmp")))
				must(t, os.Symlink(e.outside, filepath.Join(e.web, "..link_tmp.0")))
			},
			check: writeRecovers, // wantLayout proves the links were removed
		},
		"should report files in the generation that are symlinks as unsafe, never read through them": {
			setup: func(t *testing.T, e *hostileEnv) {
				_, err := e.v.WriteBundle("api", fakeBundle("api"), keepOwner)
				must(t, err)
				gen, err := e.v.WriteBundle("web", fakeBundle("web"), keepOwner)
				must(t, err)
				key := filepath.Join(e.web, gen, certs.FileServerKey)
				must(t, os.Remove(key))
				must(t, os.Symlink(filepath.Join(e.outside, certs.FileServerKey), key))
				ckey := filepath.Join(e.web, gen, certs.FileClientKey)
				must(t, os.Remove(ckey))
				must(t, os.Symlink("../../api/..data/client.key", ckey))
				cert := filepath.Join(e.web, gen, certs.FileServerCert)
				must(t, os.Rename(cert, filepath.Join(e.web, gen, "server.pem")))
				must(t, os.Symlink("server.pem", cert)) // stays inside the generation
			},
			check: func(t *testing.T, e *hostileEnv) {
				got := readWeb(t, e)
				if got.ServerKey != nil || got.ClientKey != nil || got.ServerCert != nil {
					t.Errorf("tls.key, client.key, tls.crt: got %q, %q and %q, want nil (symlinks are not bundle files)",
						got.ServerKey, got.ClientKey, got.ServerCert)
				}
				if string(got.CA) != string(fakeBundle("web").CA) {
					t.Errorf("CA: got %q, want the written one", got.CA)
				}
				unsafeRepaired("tls.crt is a symlink", "tls.key is a symlink", "client.key is a symlink")(t, e)
			},
		},
		"should report a FIFO planted as tls.key as unsafe without blocking": {
			setup: plantInGeneration(certs.FileServerKey, func(t *testing.T, p string) { must(t, syscall.Mkfifo(p, 0o600)) }),
			check: unsafeRepaired("tls.key is a FIFO"),
		},
		"should report a socket planted as ca.crt as unsafe": {
			setup: plantInGeneration(certs.FileCA, func(t *testing.T, p string) { must(t, syscall.Mknod(p, syscall.S_IFSOCK|0o600, 0)) }),
			check: unsafeRepaired("ca.crt is a socket"),
		},
		"should report a device planted as client.key as unsafe without opening it": {
			setup: plantInGeneration(certs.FileClientKey, func(t *testing.T, p string) {
				// 1, 3 is /dev/null; creating a device node needs CAP_MKNOD.
				if err := syscall.Mknod(p, syscall.S_IFCHR|0o600, 1<<8|3); errors.Is(err, syscall.EPERM) {
					t.Skipf("mknod of a device: %v", err)
				} else {
					must(t, err)
				}
			}),
			check: unsafeRepaired("client.key is a device"),
		},
		"should report a directory planted as client.crt as unsafe": {
			setup: plantInGeneration(certs.FileClientCert, func(t *testing.T, p string) { must(t, os.Mkdir(p, 0o755)) }),
			check: unsafeRepaired("client.crt is a directory"),
		},
		"should neither chown nor chmod another service's key through a hard link": {
			setup: func(t *testing.T, e *hostileEnv) {
				_, err := e.v.WriteBundle("api", fakeBundle("api"), keepOwner)
				must(t, err)
				gen, err := e.v.WriteBundle("web", fakeBundle("web"), keepOwner)
				must(t, err)
				key := filepath.Join(e.web, gen, certs.FileServerKey)
				must(t, os.Remove(key))
				must(t, os.Link(filepath.Join(e.root, "api", "..data", certs.FileServerKey), key))
				ckey := filepath.Join(e.web, gen, certs.FileClientKey)
				must(t, os.Remove(ckey))
				must(t, os.Link(filepath.Join(e.outside, certs.FileClientKey), ckey))
			},
			check: func(t *testing.T, e *hostileEnv) {
				api := filepath.Join(e.root, "api")
				before := snapshot(t, api)
				var err error
				withinDeadline(t, "FixPermissions", func() { err = e.v.FixPermissions("web", foreignOwner()) })
				if !errors.Is(err, certs.ErrUnsafeFile) {
					t.Errorf("FixPermissions: got error %v, want one wrapping ErrUnsafeFile", err)
				}
				for p, want := range before {
					if got := snapshot(t, api)[p]; got != want {
						t.Errorf("%s after FixPermissions: got %q, want %q (unchanged)", p, got, want)
					}
				}
				unsafeRepaired("tls.key has 2 links", "client.key has 2 links")(t, e)
				if got := readVisible(t, api); got[certs.FileServerKey] != string(fakeBundle("api").ServerKey) {
					t.Errorf("api's tls.key after web's rewrite: got %q, want it intact", got[certs.FileServerKey])
				}
			},
		},
		"should unlink a generation dir that is a FIFO without opening it": {
			setup: func(t *testing.T, e *hostileEnv) {
				must(t, os.Mkdir(e.web, 0o755))
				must(t, syscall.Mkfifo(filepath.Join(e.web, "..2020_01_01_00_00_00.0"), 0o600))
				must(t, os.Symlink("..2020_01_01_00_00_00.0", filepath.Join(e.web, "..data")))
			},
			check: func(t *testing.T, e *hostileEnv) {
				withinDeadline(t, "ReadBundle", func() { readIsAbsent(t, e) })
				withinDeadline(t, "WriteBundle", func() { writeRecovers(t, e) })
			},
		},
		"should remove stale generations holding FIFOs and hard links without blocking or touching their targets": {
			setup: func(t *testing.T, e *hostileEnv) {
				_, err := e.v.WriteBundle("web", fakeBundle("old"), keepOwner)
				must(t, err)
				stale := filepath.Join(e.web, "..2019_01_01_00_00_00.0")
				must(t, os.Mkdir(stale, 0o755))
				must(t, syscall.Mkfifo(filepath.Join(stale, certs.FileServerKey), 0o600))
				must(t, os.Link(filepath.Join(e.outside, certs.FileClientKey), filepath.Join(stale, certs.FileClientKey)))
				must(t, syscall.Mkfifo(filepath.Join(e.web, "..2019_01_01_00_00_01.0"), 0o600))
				must(t, os.Remove(filepath.Join(e.web, certs.FileCA)))
				must(t, syscall.Mkfifo(filepath.Join(e.web, certs.FileCA), 0o600)) // a visible name
			},
			check: func(t *testing.T, e *hostileEnv) { withinDeadline(t, "WriteBundle", func() { writeRecovers(t, e) }) },
		},
		"should replace a ..data that is a real directory": {
			setup: func(t *testing.T, e *hostileEnv) {
				must(t, os.MkdirAll(filepath.Join(e.web, "..data"), 0o755))
				for _, name := range volumeFileNames {
					must(t, os.WriteFile(filepath.Join(e.web, "..data", name), []byte("planted"), 0o644))
				}
			},
			check: func(t *testing.T, e *hostileEnv) { readIsAbsent(t, e); writeRecovers(t, e) },
		},
	}
	for desc, tc := range tests {
		t.Run(desc, func(t *testing.T) {
			t.Parallel()
			e := newHostileEnv(t)
			tc.setup(t, e)
			before := snapshot(t, e.outside)
			tc.check(t, e)
			after := snapshot(t, e.outside)
			for p, want := range before {
				if got := after[p]; got != want {
					t.Errorf("outside %s: got %q, want %q (unchanged)", p, got, want)
				}
			}
			for p, got := range after {
				if _, ok := before[p]; !ok {
					t.Errorf("outside %s: got new entry %q, want nothing created outside the volume", p, got)
				}
			}
		})
	}
}
