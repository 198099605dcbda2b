//go:build unix

package certs

import (
	"io/fs"
	"syscall"
)

// fileOwner returns a file's numeric owner, or -1, -1 if it has none.
func fileOwner(fi fs.FileInfo) (uid, gid int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return -1, -1
}

// fileLinks returns a file's hard link count, or 1 if it is unknown.
func fileLinks(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}
