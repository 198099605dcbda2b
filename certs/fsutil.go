package certs

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
)

// writeFileDurable writes data to name inside root so that, after a crash at
// any instant, name holds either its previous content or all of data, never a
// prefix. It writes a sibling temporary file, fsyncs it, renames it over name
// and fsyncs the parent directory: a rename without the file fsync can leave
// a zero-length file after a power loss (see renameio's README), and without
// the directory fsync the rename itself may not survive.
//
// The file gets owner (unless both ids are -1) through its descriptor before
// it is renamed into place, so no one else ever holds it under name.
//
// All paths are resolved through root (os.Root), so name can never escape it.
func writeFileDurable(root *os.Root, name string, data []byte, perm fs.FileMode, owner Owner) error {
	dir := path.Dir(name)
	tmp := path.Join(dir, "."+path.Base(name)+".tmp-"+randomSuffix())
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("creating temporary file for %s: %w", name, err)
	}
	// Remove the temporary file on any failure below; after a successful
	// rename it no longer exists and Remove is a harmless no-op error.
	defer func() { _ = root.Remove(tmp) }()
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", name, err)
	}
	// OpenFile's perm is filtered by the umask; set the exact mode.
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("setting mode of %s: %w", name, err)
	}
	if owner.UID != -1 || owner.GID != -1 {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			f.Close()
			return fmt.Errorf("setting owner of %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", name, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		return fmt.Errorf("renaming %s into place: %w", name, err)
	}
	return syncDir(root, dir)
}

// WriteFileDurable is writeFileDurable for other packages that keep small
// private files of their own (e.g. the operator's client bundle), so the
// crash-safe write exists once.
func WriteFileDurable(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	return writeFileDurable(root, name, data, perm, Owner{UID: -1, GID: -1})
}

// syncDir fsyncs a directory inside root so that entries created, renamed or
// removed in it are durable.
func syncDir(root *os.Root, dir string) error {
	d, err := root.Open(dir)
	if err != nil {
		return fmt.Errorf("opening directory %s for sync: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// randomSuffix returns a short random hex string for temporary names, so two
// writers never collide on a temporary file.
func randomSuffix() string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never returns an error since Go 1.24.
	return hex.EncodeToString(b[:])
}
