//go:build !unix

package certs

import "io/fs"

// fileOwner returns -1, -1: this platform has no numeric file owners.
func fileOwner(fs.FileInfo) (uid, gid int) { return -1, -1 }

// fileLinks returns 1: this platform reports no link counts here.
func fileLinks(fs.FileInfo) uint64 { return 1 }
