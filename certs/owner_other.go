//go:build !unix

package certs

import "io/fs"

// fileOwner returns -1, -1: this platform has no numeric file owners.
func fileOwner(fs.FileInfo) (uid, gid int) { return -1, -1 }
