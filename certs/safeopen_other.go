//go:build !linux

package certs

import (
	"io/fs"
	"os"
	"syscall"
)

// openNoFollow opens name inside dir for reading without waiting on a FIFO
// for a writer. Here the standard library offers no openat, and
// os.Root.OpenFile follows a final symlink that stays inside dir whatever the
// flags, so an Lstat after the open checks that name is still a plain entry
// and the very file opened; otherwise the error is ELOOP, as O_NOFOLLOW
// would report.
func openNoFollow(dir *os.Root, name string) (*os.File, error) {
	f, err := dir.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	fi, err := dir.Lstat(name)
	if err != nil {
		f.Close()
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 || !os.SameFile(fi, st) {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ELOOP}
	}
	return f, nil
}
