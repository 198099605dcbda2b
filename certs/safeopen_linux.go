package certs

import (
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"
)

// noFollowFlags open a file for reading (and fchmod, fchown) without waiting
// on a FIFO for a writer (O_NONBLOCK) and without following a symlink
// (O_NOFOLLOW fails with ELOOP instead).
const noFollowFlags = syscall.O_RDONLY | syscall.O_NONBLOCK | syscall.O_NOFOLLOW | syscall.O_CLOEXEC

// openNoFollow opens name, a single path component, inside dir with
// noFollowFlags. It calls openat on dir's own descriptor because
// os.Root.OpenFile cannot honour O_NOFOLLOW: it resolves a final symlink
// itself whenever the target stays inside the root, whatever the flags.
func openNoFollow(dir *os.Root, name string) (*os.File, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') {
		return nil, fmt.Errorf("opening %q: not a single path component", name)
	}
	d, err := dir.Open(".")
	if err != nil {
		return nil, err
	}
	defer d.Close()
	rc, err := d.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, openErr := -1, error(nil)
	err = rc.Control(func(dirfd uintptr) {
		for {
			fd, openErr = syscall.Openat(int(dirfd), name, noFollowFlags, 0)
			if openErr != syscall.EINTR {
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if openErr != nil {
		return nil, &fs.PathError{Op: "openat", Path: name, Err: openErr}
	}
	return os.NewFile(uintptr(fd), name), nil
}
