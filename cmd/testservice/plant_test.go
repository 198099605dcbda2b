//go:build unix

package main

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestMkfifoReplacesAFileWithANamedPipe(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "tls.key")
	if err := os.WriteFile(p, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code := mkfifo([]string{p}, io.Discard); code != 0 {
		t.Fatalf("got exit %d, want 0", code)
	}
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("got mode %s, want a named pipe", fi.Mode())
	}
}

func TestLinkReplacesAFileWithAHardLink(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target, p := filepath.Join(dir, "other.key"), filepath.Join(dir, "client.key")
	for _, f := range []string{target, p} {
		if err := os.WriteFile(f, []byte(f), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if code := link([]string{target, p}, io.Discard); code != 0 {
		t.Fatalf("got exit %d, want 0", code)
	}
	a, errA := os.Stat(target)
	b, errB := os.Stat(p)
	if errA != nil || errB != nil || !os.SameFile(a, b) {
		t.Errorf("got %s and %s as different files (%v, %v), want one inode", target, p, errA, errB)
	}
}

func TestPlantUsage(t *testing.T) {
	t.Parallel()
	if code := mkfifo(nil, io.Discard); code != 2 {
		t.Errorf("got mkfifo exit %d without a path, want 2", code)
	}
	if code := link([]string{"only-one"}, io.Discard); code != 2 {
		t.Errorf("got link exit %d with one argument, want 2", code)
	}
}
