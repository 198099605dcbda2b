package certs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// A service owns its directory in the volume and can replace any entry in
// it at any moment: with a FIFO (opening it for reading waits for a writer
// that never comes, pinning the worker while the service lock is held), a
// device, a symlink, or a hard link to another service's key (a chown
// through it would hand that key over). The helpers here open such entries
// so that nothing blocks or follows a link, and decide what an entry is from
// the opened file itself, so that a swap after a check changes nothing.

// entry is one bundle file of a generation dir as opened by openEntry.
type entry struct {
	name   string
	f      *os.File    // nil if the file is missing or unsafe, except linked
	fi     fs.FileInfo // f's own stat (fstat)
	unsafe string      // what makes it unsafe, e.g. "is a FIFO"; "" if safe
	// linked: a regular file whose only fault is extra hard links. It is
	// kept open, since reading it can neither block nor follow anything,
	// but nothing may be changed through it.
	linked bool
}

// openEntries opens every bundle file of the generation dir gr. Missing
// files have a nil f; unsafe ones are described and not kept open, except
// linked regular files, which stay open for reading. The caller closes the
// entries with closeEntries.
func openEntries(gr *os.Root) ([]entry, error) {
	entries := make([]entry, 0, len(bundleFileNames))
	for _, name := range bundleFileNames {
		e, err := openEntry(gr, name)
		if err != nil {
			closeEntries(entries)
			return nil, err
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func closeEntries(entries []entry) {
	for _, e := range entries {
		if e.f != nil {
			e.f.Close()
		}
	}
}

// unsafeEntries lists the unsafe entries, in bundle file order.
func unsafeEntries(entries []entry) []UnsafeFile {
	var out []UnsafeFile
	for _, e := range entries {
		if e.unsafe != "" {
			out = append(out, UnsafeFile{Name: e.name, What: e.unsafe, Linked: e.linked})
		}
	}
	return out
}

// unsafeError is the error for a generation holding unsafe files.
func unsafeError(unsafe []UnsafeFile) error {
	descs := make([]string, len(unsafe))
	for i, u := range unsafe {
		descs[i] = u.String()
	}
	return fmt.Errorf("%w: %s", ErrUnsafeFile, strings.Join(descs, ", "))
}

// openEntry opens name in dir read-only, never blocking and never following
// a symlink, and keeps it open only if the opened file is a regular file;
// one with more than one link is kept open but marked unsafe and linked.
// The Lstat first only spares opening what is plainly not a file (a
// device's open can have side effects); the fstat of the opened file
// decides.
func openEntry(dir *os.Root, name string) (entry, error) {
	e := entry{name: name}
	fi, err := dir.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return e, nil
	}
	if err != nil {
		return e, err
	}
	if e.unsafe = describeType(fi); e.unsafe != "" {
		return e, nil
	}
	f, err := openNoFollow(dir, name)
	if err != nil {
		return openFailed(dir, e, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return e, fmt.Errorf("stat of opened %s: %w", name, err)
	}
	if e.unsafe = describeType(st); e.unsafe != "" {
		f.Close()
		return e, nil
	}
	e.f, e.fi = f, st
	e.unsafe = describeLinks(st)
	e.linked = e.unsafe != ""
	return e, nil
}

// openFailed classifies an open that failed after the Lstat saw a regular
// file: the entry was removed (missing), or swapped for a symlink (ELOOP) or
// for something else whose open fails, such as a socket (ENXIO), which a
// second Lstat names. Any other failure is an error.
func openFailed(dir *os.Root, e entry, err error) (entry, error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return e, nil
	case errors.Is(err, syscall.ELOOP):
		e.unsafe = "is a symlink"
		return e, nil
	}
	if fi, lerr := dir.Lstat(e.name); lerr == nil {
		if e.unsafe = describeUnsafe(fi); e.unsafe != "" {
			return e, nil
		}
	}
	return e, err
}

// describeUnsafe says why fi is not a regular file with one link, for a
// message such as "tls.key is a FIFO"; "" means fi is safe.
func describeUnsafe(fi fs.FileInfo) string {
	if what := describeType(fi); what != "" {
		return what
	}
	return describeLinks(fi)
}

// describeType says what fi is if it is not a regular file, else "".
func describeType(fi fs.FileInfo) string {
	switch t := fi.Mode().Type(); {
	case t&fs.ModeSymlink != 0:
		return "is a symlink"
	case t&fs.ModeNamedPipe != 0:
		return "is a FIFO"
	case t&fs.ModeSocket != 0:
		return "is a socket"
	case t&fs.ModeDevice != 0:
		return "is a device"
	case t&fs.ModeDir != 0:
		return "is a directory"
	case t != 0:
		return fmt.Sprintf("is not a regular file (type %s)", t)
	}
	return ""
}

// describeLinks says how many links a regular file has if not exactly one.
func describeLinks(fi fs.FileInfo) string {
	if n := fileLinks(fi); n != 1 {
		return fmt.Sprintf("has %d links", n)
	}
	return ""
}

// openDirRoot opens the directory name in parent as a root and reports
// whether it is the directory that an Lstat described as fi; if it is not,
// the root is closed and nil. It opens "name/." rather than name: os.Root
// opens the last component of a path without O_DIRECTORY, so a FIFO swapped
// in for the directory would block that open, while an inner component is
// opened with O_DIRECTORY, which fails at once on anything but a directory.
// A symlink swapped in is followed inside parent, which the comparison
// with fi catches.
func openDirRoot(parent *os.Root, name string, fi fs.FileInfo) (r *os.Root, same bool, err error) {
	r, err = parent.OpenRoot(name + "/.")
	if err != nil {
		return nil, false, err
	}
	st, err := r.Stat(".")
	if err != nil || !os.SameFile(fi, st) {
		r.Close()
		return nil, false, err
	}
	return r, true, nil
}

// applyDirModeOwner gives r's own directory mode and owner, through a
// descriptor of it.
func applyDirModeOwner(r *os.Root, mode fs.FileMode, owner Owner) error {
	d, err := r.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	fi, err := d.Stat()
	if err != nil {
		return err
	}
	return setModeOwner(d, fi, mode, owner)
}

// setModeOwner gives the open file f (whose fstat is fi) mode and owner with
// fchmod and fchown: acting on the descriptor, not on a path, means a path
// swapped after the open cannot redirect the change to another file. Only
// what differs is changed, so re-applying does not churn ctime.
func setModeOwner(f *os.File, fi fs.FileInfo, mode fs.FileMode, owner Owner) error {
	if fi.Mode().Perm() != mode {
		if err := f.Chmod(mode); err != nil {
			return fmt.Errorf("setting mode of %s: %w", f.Name(), err)
		}
	}
	uid, gid := fileOwner(fi)
	if (owner.UID == -1 || owner.UID == uid) && (owner.GID == -1 || owner.GID == gid) {
		return nil
	}
	if err := f.Chown(owner.UID, owner.GID); err != nil {
		return fmt.Errorf("setting owner of %s: %w", f.Name(), err)
	}
	return nil
}
