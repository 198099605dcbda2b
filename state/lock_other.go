//go:build !unix

package state

// lockFile is a no-op where flock is unavailable; the controller only ships
// for Linux, and on Windows renaming a file another process has open fails
// anyway.
func lockFile(string) (func(), error) { return func() {}, nil }
