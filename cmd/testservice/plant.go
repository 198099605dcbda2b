//go:build unix

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// mkfifo and link let an e2e test play a hostile tenant from inside its own
// container (the image has no shell): a service that mounts the certs volume
// read-write can swap a file of its bundle for a named pipe, on which a
// naive reader blocks forever, or for a hard link to another service's key,
// which a naive chown follows.

// mkfifo replaces path (if present) with a named pipe.
func mkfifo(args []string, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: testservice mkfifo <path>")
		return 2
	}
	if err := removeIfPresent(args[0]); err != nil {
		fmt.Fprintf(stderr, "mkfifo: %v\n", err)
		return 1
	}
	if err := syscall.Mkfifo(args[0], 0o600); err != nil {
		fmt.Fprintf(stderr, "mkfifo: %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// link replaces path (if present) with a hard link to target.
func link(args []string, stderr io.Writer) int {
	if len(args) != 2 {
		fmt.Fprintln(stderr, "usage: testservice link <target> <path>")
		return 2
	}
	if err := removeIfPresent(args[1]); err != nil {
		fmt.Fprintf(stderr, "link: %v\n", err)
		return 1
	}
	if err := os.Link(args[0], args[1]); err != nil {
		fmt.Fprintf(stderr, "link: %v\n", err)
		return 1
	}
	return 0
}

func removeIfPresent(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
