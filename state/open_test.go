package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// movedAsideName is the pattern of a moved-aside store: state.db.corrupt-<UTC timestamp>[-n].
var movedAsideName = regexp.MustCompile(`^state\.db\.corrupt-\d{8}T\d{6}Z(-\d+)?$`)

func TestOpenMovesAsideUnusableStores(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// damage leaves an unusable state.db in dir.
		damage func(t *testing.T, dir string)
		// wantReason is a substring of the logged error, proving which check fired.
		wantReason string
	}{
		"should rebuild when state.db is garbage bytes": {
			damage: func(t *testing.T, dir string) {
				writeStateFile(t, dir, bytes.Repeat([]byte("not a bolt db "), 1000))
			},
			wantReason: "invalid database",
		},
		"should rebuild when state.db is a few garbage bytes shorter than a page": {
			damage: func(t *testing.T, dir string) {
				writeStateFile(t, dir, []byte("garbage"))
			},
			wantReason: "invalid database",
		},
		"should rebuild when a valid state.db was truncated to its first pages": {
			damage: func(t *testing.T, dir string) {
				path, _ := populatedStore(t, dir, 300)
				if err := os.Truncate(path, 3*4096); err != nil {
					t.Fatal(err)
				}
			},
			wantReason: "truncated",
		},
		"should rebuild when a valid state.db was truncated in the middle of its used pages": {
			damage: func(t *testing.T, dir string) {
				path, used := populatedStore(t, dir, 300)
				if err := os.Truncate(path, used/2); err != nil {
					t.Fatal(err)
				}
			},
			wantReason: "truncated",
		},
		"should rebuild when the root page of a valid state.db is garbage": {
			damage: func(t *testing.T, dir string) {
				path, _ := populatedStore(t, dir, 300)
				m := readMeta(t, path)
				overwrite(t, path, int64(m.root*m.pageSize), bytes.Repeat([]byte{0xA5, 0x17, 0xFF, 0x03}, int(m.pageSize)/4))
			},
			wantReason: "unusable",
		},
		"should rebuild when the freelist page has the wrong type, which makes bolt.Open panic": {
			damage: func(t *testing.T, dir string) {
				path, _ := populatedStore(t, dir, 300)
				m := readMeta(t, path)
				overwrite(t, path, int64(m.freelist*m.pageSize)+8, []byte{0, 0}) // page flags
			},
			wantReason: "bbolt panicked",
		},
		"should rebuild when the freelist page claims more pages than the file has": {
			damage: func(t *testing.T, dir string) {
				path, _ := populatedStore(t, dir, 300)
				m := readMeta(t, path)
				overflow := make([]byte, 4)
				binary.NativeEndian.PutUint32(overflow, 1<<30)
				overwrite(t, path, int64(m.freelist*m.pageSize)+12, overflow)
			},
			wantReason: "freelist page",
		},
		"should rebuild when the schema version is newer than this build understands": {
			damage: func(t *testing.T, dir string) {
				closedStoreWith(t, dir, func(tx *bolt.Tx) error {
					return tx.Bucket(bucketMeta).Put([]byte(metaSchemaVersion), []byte(strconv.Itoa(SchemaVersion+1)))
				})
			},
			wantReason: "schema version " + strconv.Itoa(SchemaVersion+1),
		},
		"should rebuild when the schema version does not decode": {
			damage: func(t *testing.T, dir string) {
				closedStoreWith(t, dir, func(tx *bolt.Tx) error {
					return tx.Bucket(bucketMeta).Put([]byte(metaSchemaVersion), []byte(`"one"`))
				})
			},
			wantReason: "decoding schema_version",
		},
		"should rebuild when the schema version is missing": {
			damage: func(t *testing.T, dir string) {
				closedStoreWith(t, dir, func(tx *bolt.Tx) error {
					return tx.Bucket(bucketMeta).Delete([]byte(metaSchemaVersion))
				})
			},
			wantReason: "no schema_version",
		},
		"should rebuild when data is present but the meta bucket is not": {
			damage: func(t *testing.T, dir string) {
				closedStoreWith(t, dir, func(tx *bolt.Tx) error {
					return tx.DeleteBucket(bucketMeta)
				})
			},
			wantReason: "no \"meta\" bucket",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.damage(t, dir)
			original := readStateFile(t, dir)

			s, logs := mustOpen(t, dir)

			if !s.Rebuilt() {
				t.Fatalf("Rebuilt: got false, want true")
			}
			moved := movedAside(t, dir)
			if len(moved) != 1 {
				t.Fatalf("moved-aside files: got %v, want exactly one", moved)
			}
			if want := "state.db.corrupt-20261129T123000Z"; moved[0] != want {
				t.Fatalf("moved-aside name: got %q, want %q", moved[0], want)
			}
			if got, _ := os.ReadFile(filepath.Join(dir, moved[0])); !bytes.Equal(got, original) {
				t.Fatalf("moved-aside content: got %d bytes differing from the original %d", len(got), len(original))
			}
			checkErrorLogged(t, logs, dir, moved[0], tc.wantReason)
			checkFreshAndUsable(t, s)
			checkMode(t, filepath.Join(dir, FileName), fileMode)
		})
	}
}

func TestOpenPicksAFreshNameWhenAMovedAsideFileExists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, want := range []string{"state.db.corrupt-20261129T123000Z", "state.db.corrupt-20261129T123000Z-1"} {
		writeStateFile(t, dir, []byte("garbage"))
		s, logs := mustOpen(t, dir)
		checkErrorLogged(t, logs, dir, want, "invalid database")
		if err := s.Close(); err != nil {
			t.Fatalf("Close: got %v, want nil", err)
		}
	}
	if got := movedAside(t, dir); len(got) != 2 {
		t.Fatalf("moved-aside files: got %v, want two", got)
	}
}

func TestOpenDoesNotTreatLockOrOpenFailuresAsCorruption(t *testing.T) {
	t.Parallel()
	const timeout = 200 * time.Millisecond
	tests := map[string]struct {
		// setup prepares dir and returns a cleanup to run after the failed Open.
		setup func(t *testing.T, dir string)
		// wantLocked: the error must wrap ErrLocked.
		wantLocked bool
		// wantInError: substrings the error message must carry for the operator.
		wantInError []string
	}{
		"should return ErrLocked naming the path while another store has it open": {
			setup: func(t *testing.T, dir string) {
				s, _ := mustOpen(t, dir) // closed by t.Cleanup, after the assertions
				mustPut(t, s, newRecord("c1"))
			},
			wantLocked:  true,
			wantInError: []string{FileName, "another controller"},
		},
		"should return ErrLocked and never move aside a garbage file another process holds": {
			setup: func(t *testing.T, dir string) {
				writeStateFile(t, dir, []byte("garbage"))
				unlock, err := lockFile(filepath.Join(dir, FileName))
				if err != nil {
					t.Fatalf("locking: %v", err)
				}
				t.Cleanup(unlock)
			},
			wantLocked:  true,
			wantInError: []string{FileName, "another controller"},
		},
		"should return ErrLocked and never move aside a truncated file another process holds": {
			setup: func(t *testing.T, dir string) {
				path, _ := populatedStore(t, dir, 50)
				if err := os.Truncate(path, 3*4096); err != nil {
					t.Fatal(err)
				}
				unlock, err := lockFile(path)
				if err != nil {
					t.Fatalf("locking: %v", err)
				}
				t.Cleanup(unlock)
			},
			wantLocked:  true,
			wantInError: []string{FileName, "another controller"},
		},
		"should return an open error when state.db is a directory": {
			setup: func(t *testing.T, dir string) {
				if err := os.Mkdir(filepath.Join(dir, FileName), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			wantInError: []string{FileName},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			tc.setup(t, dir)
			before := readDirNames(t, dir)
			o, logs := testOptions(withTimeout(timeout))

			start := time.Now()
			s, err := Open(dir, o)
			elapsed := time.Since(start)

			if err == nil {
				_ = s.Close()
				t.Fatalf("Open: got nil error, want one")
			}
			if got := errors.Is(err, ErrLocked); got != tc.wantLocked {
				t.Fatalf("errors.Is(%v, ErrLocked): got %v, want %v", err, got, tc.wantLocked)
			}
			for _, want := range tc.wantInError {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error: got %q, want it to mention %q", err, want)
				}
			}
			if limit := timeout + time.Second; elapsed > limit {
				t.Fatalf("Open took %v, want under %v", elapsed, limit)
			}
			if after := readDirNames(t, dir); strings.Join(after, ",") != strings.Join(before, ",") {
				t.Fatalf("dir entries: got %v, want unchanged %v", after, before)
			}
			if errs := logs.withLevel(t, "ERROR"); len(errs) != 0 {
				t.Fatalf("ERROR lines: got %v, want none", errs)
			}
		})
	}
}

func TestOpenFailsClearlyWhenTheDirIsNotAccessible(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root bypasses directory permissions")
	}
	parent := t.TempDir()
	dir := filepath.Join(parent, "state")
	if err := os.Mkdir(dir, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
	o, logs := testOptions()
	s, err := Open(dir, o)
	if err == nil {
		_ = s.Close()
		t.Fatalf("Open: got nil error, want permission denied")
	}
	if !errors.Is(err, os.ErrPermission) || errors.Is(err, ErrLocked) {
		t.Fatalf("Open error: got %v, want one wrapping os.ErrPermission and not ErrLocked", err)
	}
	if errs := logs.withLevel(t, "ERROR"); len(errs) != 0 {
		t.Fatalf("ERROR lines: got %v, want none", errs)
	}
}

func checkErrorLogged(t *testing.T, logs *logBuffer, dir, movedName, reason string) {
	t.Helper()
	errs := logs.withLevel(t, "ERROR")
	if len(errs) != 1 {
		t.Fatalf("ERROR lines: got %d (%v), want 1", len(errs), errs)
	}
	line := errs[0]
	if got, want := line[logKeyPath], filepath.Join(dir, FileName); got != want {
		t.Fatalf("logged %s: got %v, want %v", logKeyPath, got, want)
	}
	movedTo, _ := line[logKeyMovedTo].(string)
	if want := filepath.Join(dir, movedName); movedTo != want || !movedAsideName.MatchString(filepath.Base(movedTo)) {
		t.Fatalf("logged %s: got %q, want %q matching %v", logKeyMovedTo, movedTo, want, movedAsideName)
	}
	if msg, _ := line[logKeyError].(string); !strings.Contains(msg, reason) {
		t.Fatalf("logged %s: got %q, want it to contain %q", logKeyError, msg, reason)
	}
}

func checkFreshAndUsable(t *testing.T, s *Store) {
	t.Helper()
	if rs, err := s.List(); err != nil || len(rs) != 0 {
		t.Fatalf("List on the fresh store: got (%d records, %v), want (0, nil)", len(rs), err)
	}
	mustPut(t, s, newRecord("c1"))
	if _, found, err := s.Get("c1"); !found || err != nil {
		t.Fatalf("Get on the fresh store: got found=%v err=%v, want true, nil", found, err)
	}
}

func TestOpenTightensTheStateDir(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		// dirMode is the state dir's mode before Open.
		dirMode os.FileMode
		// files are created in the state dir, empty, with these modes.
		files map[string]os.FileMode
		// wantModes are the modes after Open, by name; "" is the dir itself.
		wantModes map[string]os.FileMode
		// wantLogged are the lines about a tightened mode, by name ("" is
		// the dir): level, from_mode and to_mode.
		wantLogged map[string][3]string
	}{
		"should tighten a world-open state dir to 0700 and log what it was": {
			dirMode:    0o777,
			wantModes:  map[string]os.FileMode{"": 0o700},
			wantLogged: map[string][3]string{"": {"WARN", "0777", "0700"}},
		},
		"should tighten a state dir others can only list, as a new Docker volume is, to 0700 without a warning": {
			dirMode:    0o755,
			wantModes:  map[string]os.FileMode{"": 0o700},
			wantLogged: map[string][3]string{"": {"INFO", "0755", "0700"}},
		},
		"should tighten CA keys other users can read to 0600 and log each": {
			dirMode:    0o700,
			files:      map[string]os.FileMode{"ca.key": 0o644, "ca-next.key": 0o640},
			wantModes:  map[string]os.FileMode{"ca.key": 0o600, "ca-next.key": 0o600},
			wantLogged: map[string][3]string{"ca.key": {"WARN", "0644", "0600"}, "ca-next.key": {"WARN", "0640", "0600"}},
		},
		"should tighten the store and a moved-aside copy to 0600 and log each": {
			dirMode:    0o700,
			files:      map[string]os.FileMode{FileName: 0o666, FileName + ".corrupt-20261129T123000Z": 0o644},
			wantModes:  map[string]os.FileMode{FileName: 0o600, FileName + ".corrupt-20261129T123000Z": 0o600},
			wantLogged: map[string][3]string{FileName: {"WARN", "0666", "0600"}, FileName + ".corrupt-20261129T123000Z": {"WARN", "0644", "0600"}},
		},
		"should take write away from others on a CA certificate but leave it readable": {
			dirMode:    0o700,
			files:      map[string]os.FileMode{"ca.crt": 0o666},
			wantModes:  map[string]os.FileMode{"ca.crt": 0o644},
			wantLogged: map[string][3]string{"ca.crt": {"WARN", "0666", "0644"}},
		},
		"should leave a tight state dir alone and log nothing": {
			dirMode:   0o700,
			files:     map[string]os.FileMode{"ca.key": 0o600, "ca.crt": 0o644, FileName: 0o600},
			wantModes: map[string]os.FileMode{"": 0o700, "ca.key": 0o600, "ca.crt": 0o644, FileName: 0o600},
		},
		"should leave a key stricter than 0600 alone": {
			dirMode:   0o700,
			files:     map[string]os.FileMode{"ca.key": 0o400},
			wantModes: map[string]os.FileMode{"ca.key": 0o400},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "state")
			mustMkdirMode(t, dir, tc.dirMode)
			for f, mode := range tc.files {
				mustWriteMode(t, filepath.Join(dir, f), mode)
			}
			_, logs := mustOpen(t, dir)
			for f, want := range tc.wantModes {
				checkLmode(t, filepath.Join(dir, f), want)
			}
			checkTightenedLogged(t, logs, dir, tc.wantLogged)
		})
	}
}

func TestOpenDoesNotFollowASymlinkOutOfTheStateDir(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "state")
	mustMkdirMode(t, dir, 0o700)
	outside := filepath.Join(t.TempDir(), "passwd")
	mustWriteMode(t, outside, 0o644)
	if err := os.Symlink(outside, filepath.Join(dir, "ca.key")); err != nil {
		t.Fatal(err)
	}
	_, logs := mustOpen(t, dir)
	checkLmode(t, outside, 0o644)
	checkTightenedLogged(t, logs, dir, nil)
}

func mustMkdirMode(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func mustWriteMode(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, nil, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// checkLmode checks path's own mode, not a symlink target's.
func checkLmode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s: got %04o, want %04o", path, got, want)
	}
}

// checkTightenedLogged checks the lines about a tightened mode are exactly
// want: by name in dir ("" for dir itself), level, from and to modes.
func checkTightenedLogged(t *testing.T, logs *logBuffer, dir string, want map[string][3]string) {
	t.Helper()
	got := map[string][3]string{}
	for _, line := range logs.lines(t) {
		if _, ok := line[logKeyFromMode]; !ok {
			continue
		}
		path, _ := line[logKeyPath].(string)
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			t.Fatalf("logged %s %q is not in %s", logKeyPath, path, dir)
		}
		if rel == "." {
			rel = ""
		}
		level, _ := line[slog.LevelKey].(string)
		from, _ := line[logKeyFromMode].(string)
		to, _ := line[logKeyToMode].(string)
		got[rel] = [3]string{level, from, to}
	}
	if len(got) != len(want) {
		t.Errorf("tightened-mode lines: got %v, want %v", got, want)
		return
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("line for %q (level, from_mode, to_mode): got %v, want %v", name, got[name], w)
		}
	}
}

func TestTighteningSaysWhetherOthersCouldReadOrReplace(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name  string // in the state dir; "" with isDir
		isDir bool
		mode  os.FileMode
		// wantMode is the tightened mode; wantExposed whether the removed
		// bits let others read a secret or replace an entry.
		wantMode    os.FileMode
		wantExposed bool
	}{
		"should call a dir others can write exposed":             {isDir: true, mode: 0o730, wantMode: 0o700, wantExposed: true},
		"should not call a dir others can only list exposed":     {isDir: true, mode: 0o755, wantMode: 0o700},
		"should call a key others can read exposed":              {name: "ca.key", mode: 0o604, wantMode: 0o600, wantExposed: true},
		"should call a certificate others can write exposed":     {name: "ca.crt", mode: 0o646, wantMode: 0o644, wantExposed: true},
		"should leave a certificate others can only read as is":  {name: "ca.crt", mode: 0o644, wantMode: 0o644},
		"should treat an unknown file as public, not as private": {name: "rotate-request", mode: 0o640, wantMode: 0o640},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			mode, exposed := tightening(tc.name, tc.isDir, tc.mode)
			if mode != tc.wantMode || exposed != tc.wantExposed {
				t.Errorf("got (%04o, %t), want (%04o, %t)", mode, exposed, tc.wantMode, tc.wantExposed)
			}
		})
	}
}
