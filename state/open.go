package state

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

const (
	// FileName is the store's file inside the state dir.
	FileName = "state.db"

	// DefaultTimeout is how long Open waits for another process's lock.
	DefaultTimeout = 2 * time.Second

	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600

	// corruptInfix and corruptTimeLayout name a moved-aside file:
	// state.db.corrupt-20261129T123000Z.
	corruptInfix      = ".corrupt-"
	corruptTimeLayout = "20060102T150405Z"
)

// ErrLocked means another process holds the store's lock, most likely a
// second controller started on the same state dir. The file is not touched.
var ErrLocked = errors.New("state store is locked by another process")

// Options configures Open. The zero value is usable.
type Options struct {
	// Timeout bounds the wait for the file lock. Default DefaultTimeout (2s):
	// long enough to ride out a previous controller still shutting down,
	// short enough that a duplicate fails clearly instead of hanging.
	Timeout time.Duration
	// Logger receives the ERROR line when a store is moved aside and WARN
	// lines for undecodable records. Default slog.Default().
	Logger *slog.Logger
	// Now stamps Record.UpdatedAt and names moved-aside files. Default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Open opens (creating if needed) the store in dir. dir is created 0700 if
// missing. An existing dir is tightened to 0700 and the CA keys and store
// files in it to 0600, each change logged (see tightenStateDir), because the
// CA key signs every identity in the trust domain; an entry that cannot be
// tightened fails Open rather than run on with the key exposed.
//
// A lock held by another process returns an error wrapping ErrLocked after
// opts.Timeout. An error opening the file at all (permission denied, a
// directory in the way) is returned as is. Any other failure — bbolt cannot
// read the file, it fails the consistency check, its schema version is
// missing, undecodable or newer than SchemaVersion — moves the file aside to
// state.db.corrupt-<UTC timestamp>, logs at ERROR and carries on with an
// empty store; Rebuilt then reports true.
func Open(dir string, opts Options) (*Store, error) {
	opts = opts.withDefaults()
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return nil, fmt.Errorf("creating state dir: %w", err)
	}
	if err := tightenStateDir(dir, opts.Logger); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, FileName)
	s := &Store{path: path, log: opts.Logger, now: opts.Now}

	db, held, err := openChecked(path, opts.Timeout, opts.Logger)
	if err == nil {
		s.db = db
		return s, nil
	}
	if !errors.Is(err, errUnusable) {
		return nil, err
	}
	movedTo, mvErr := moveAside(path, opts.Now(), held)
	if held != nil {
		_ = held.Close()
	}
	if mvErr != nil {
		return nil, fmt.Errorf("state store %s is unusable (%v) and could not be moved aside: %w", path, err, mvErr)
	}
	opts.Logger.Error("state store was unusable: moved it aside and started an empty one; "+
		"container state will be rebuilt from Docker and the certs volume",
		logKeyPath, path, logKeyMovedTo, movedTo, logKeyError, err)
	db, held, err = openChecked(path, opts.Timeout, opts.Logger)
	if held != nil {
		_ = held.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("creating a fresh state store after moving the old one aside: %w", err)
	}
	s.db = db
	s.rebuilt = true
	return s, nil
}

// Log keys of a tightened mode.
const (
	logKeyFromMode = "from_mode"
	logKeyToMode   = "to_mode"
)

// keySuffix ends the name of every private key the CA keeps in the state dir
// (ca.key, ca-next.key; see certs.Authority).
const keySuffix = ".key"

// tightening decides the mode an entry of the state dir (isDir: the dir
// itself) should have instead of mode. The dir, the CA keys and the store
// (with its moved-aside copies, which name every container) lose all group
// and other access; any other file, such as a CA certificate, is public but
// loses group and other write, so no one can swap the trust anchor. It only
// ever removes bits: a stricter mode (0400) is left alone.
//
// exposed says whether the removed bits let other users read a secret or
// replace an entry. Only listing the dir (0755, what a new Docker volume
// gets) exposes no content while the files are tight, and warning about it
// on every first start would teach operators to ignore the warning.
func tightening(name string, isDir bool, mode fs.FileMode) (to fs.FileMode, exposed bool) {
	perm := mode.Perm()
	private := isDir || strings.HasSuffix(name, keySuffix) ||
		name == FileName || strings.HasPrefix(name, FileName+corruptInfix)
	to = perm &^ 0o022
	if private {
		to = perm &^ 0o077
	}
	removed := perm &^ to
	return to, removed&0o022 != 0 || (!isDir && removed != 0)
}

// tightenStateDir applies tightening to dir and the regular files in it,
// logging each change: at WARN when the CA key or state may have been read
// or replaced, so the operator can judge whether to rotate the CA. The dir
// goes first: once it is 0700 no other user can swap a file for a symlink
// between its check and its chmod. Symlinks are skipped, as chmod would
// follow them out of the dir.
func tightenStateDir(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking state dir: %w", err)
	}
	if err := tighten(dir, "", true, fi.Mode(), os.Chmod, log); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening state dir: %w", err)
	}
	defer root.Close()
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		return fmt.Errorf("listing state dir: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking %s: %w", path, err)
		}
		chmod := func(_ string, m fs.FileMode) error { return root.Chmod(e.Name(), m) }
		if err := tighten(path, e.Name(), false, info.Mode(), chmod, log); err != nil {
			return err
		}
	}
	return nil
}

// tighten applies tightening to the entry at path (name in the state dir,
// "" for the dir itself) and logs the change.
func tighten(path, name string, isDir bool, from fs.FileMode, chmod func(string, fs.FileMode) error, log *slog.Logger) error {
	to, exposed := tightening(name, isDir, from)
	if from.Perm() == to {
		return nil
	}
	if err := chmod(path, to); err != nil {
		return fmt.Errorf("tightening %s from %04o to %04o: %w", path, from.Perm(), to, err)
	}
	attrs := []any{logKeyPath, path, logKeyFromMode, fmt.Sprintf("%04o", from.Perm()), logKeyToMode, fmt.Sprintf("%04o", to)}
	if !exposed {
		log.Info("tightened the state dir so other users cannot list it", attrs...)
		return nil
	}
	log.Warn("tightened a state dir permission that let other users read or replace the CA key or state; "+
		"if the CA key may have been read, rotate the CA (controller ca rotate)", attrs...)
	return nil
}

// openChecked opens path with bbolt, verifies it is readable end to end and
// brings its schema to SchemaVersion. Errors that mean "the bytes in this
// file are bad" wrap errUnusable; everything else (lock, open, write) doesn't.
//
// held is non-nil only if bolt.Open itself panicked: bbolt then still has the
// file mapped, and the mapping keeps our flock alive even after a close, so
// we return the descriptor (which holds the lock) for moveAside to rely on
// instead of trying to lock the file again. The caller closes it.
func openChecked(path string, timeout time.Duration, log *slog.Logger) (db *bolt.DB, held *os.File, err error) {
	if err := checkFileBounds(path); err != nil {
		return nil, nil, err
	}

	// bbolt reads the file through an mmap: a truncated file faults (SIGBUS)
	// and garbage pages make it panic. Turn both into errors for this
	// goroutine; SetPanicOnFault exists for exactly this mmap case.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))

	// Capture the *os.File so we can tell "could not open the file" (not
	// corruption) from "could not read what's in it", and so a panic inside
	// bolt.Open can hand the lock-holding descriptor to moveAside.
	var file *os.File
	var openErr error
	openFile := func(name string, flag int, perm os.FileMode) (*os.File, error) {
		file, openErr = openFileMode(name, flag, perm)
		return file, openErr
	}
	defer func() {
		if r := recover(); r != nil {
			if db != nil {
				_ = db.Close() // the panic came after Open: Close unmaps and unlocks
			} else {
				held = file
			}
			db, err = nil, fmt.Errorf("%w: reading %s: bbolt panicked: %v", errUnusable, path, r)
		}
	}()

	db, err = bolt.Open(path, fileMode, &bolt.Options{Timeout: timeout, OpenFile: openFile})
	switch {
	case err == nil:
	case errors.Is(err, berrors.ErrTimeout):
		return nil, nil, fmt.Errorf("opening %s: %w: is another controller running with the same state dir?", path, ErrLocked)
	case openErr != nil:
		return nil, nil, fmt.Errorf("opening state store: %w", openErr)
	default:
		return nil, nil, fmt.Errorf("%w: opening %s: %w", errUnusable, path, err)
	}
	if err := checkIntegrity(db); err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("%w: %s: %w", errUnusable, path, err)
	}
	var found int
	err = db.Update(func(tx *bolt.Tx) error {
		var err error
		found, err = upgradeSchema(tx, SchemaVersion, migrations)
		return err
	})
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("preparing schema of %s: %w", path, err)
	}
	if found != 0 && found != SchemaVersion {
		log.Info("migrated state store schema", logKeyPath, path,
			logKeyFromVersion, found, logKeyToVersion, SchemaVersion)
	}
	return db, nil, nil
}

// openFileMode opens the store file and tightens its mode to 0600 if someone
// loosened it: it names every container and its serials.
func openFileMode(name string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Mode().Perm() != fileMode {
		err = f.Chmod(fileMode)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("setting mode of %s: %w", name, err)
	}
	return f, nil
}

// checkIntegrity proves the file is readable before anyone relies on it.
// Order matters: the size check first guarantees every page bbolt can
// reference lies inside the file, so nothing after it can fault; the walk
// then runs in this goroutine where panics are recovered, before tx.Check
// (which runs in its own goroutine, where a panic would kill the process)
// verifies the page accounting.
func checkIntegrity(db *bolt.DB) error {
	return db.View(func(tx *bolt.Tx) error {
		fi, err := os.Stat(db.Path())
		if err != nil {
			return fmt.Errorf("stat: %w", err)
		}
		if tx.Size() > fi.Size() {
			return fmt.Errorf("file is %d bytes but its pages need %d: truncated", fi.Size(), tx.Size())
		}
		if err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walkBucket(b) }); err != nil {
			return err
		}
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return fmt.Errorf("consistency check: %w", errors.Join(errs...))
		}
		return nil
	})
}

func walkBucket(b *bolt.Bucket) error {
	return b.ForEach(func(k, v []byte) error {
		if v != nil {
			return nil
		}
		if nested := b.Bucket(k); nested != nil {
			return walkBucket(nested)
		}
		return nil
	})
}

// moveAside renames path to a unique state.db.corrupt-<UTC timestamp> name
// while holding the file's lock, so a file another process is using is never
// moved (that process would keep writing to the renamed file). held, if not
// nil, already holds the lock.
func moveAside(path string, now time.Time, held *os.File) (string, error) {
	if held == nil {
		unlock, err := lockFile(path)
		if err != nil {
			return "", err
		}
		defer unlock()
	}
	base := path + corruptInfix + now.UTC().Format(corruptTimeLayout)
	target := base
	for i := 1; ; i++ {
		_, err := os.Lstat(target)
		if errors.Is(err, fs.ErrNotExist) {
			break
		}
		if err != nil {
			return "", fmt.Errorf("checking %s: %w", target, err)
		}
		target = fmt.Sprintf("%s-%d", base, i)
	}
	if err := os.Rename(path, target); err != nil {
		return "", fmt.Errorf("moving aside: %w", err)
	}
	return target, nil
}
