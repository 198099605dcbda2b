package servicekit

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

const (
	// dataLink is the symlink an AtomicWriter swap renames.
	dataLink = "..data"
	// maxFileSize bounds what is read of one file; a bundle file is a few KiB.
	maxFileSize = 1 << 20
	// readAttempts bounds the retries of a read that raced with a swap.
	readAttempts = 3
)

// errChanging means the bundle changed under every read attempt; the next
// look will find it settled.
var errChanging = errors.New("bundle kept changing while being read")

// snapshot is the raw content of one generation.
type snapshot struct {
	generation string
	files      map[string][]byte // present, readable files
	unsafe     map[string]string // present files that were not read, and why
}

// readSnapshot reads every file of one generation: it notes the generation,
// reads, and keeps the result only if the generation is still the same
// afterwards. A writer removes old generations right after a swap, so a
// read that raced with one would otherwise see files vanish.
func readSnapshot(dir string) (snapshot, error) {
	for range readAttempts {
		before, err := generationOf(dir)
		if err != nil {
			return snapshot{}, err
		}
		snap, err := readGeneration(dir, before)
		if err != nil {
			return snapshot{}, err
		}
		after, err := generationOf(dir)
		if err != nil {
			return snapshot{}, err
		}
		if after == before {
			return snap, nil
		}
	}
	return snapshot{}, fmt.Errorf("reading %s: %w", dir, errChanging)
}

// generationOf names what dir holds now: the target of ..data in the
// AtomicWriter layout, else a digest of the visible files' sizes and
// modification times, so a directory of plain files rewritten in place
// reads as a new generation too.
func generationOf(dir string) (string, error) {
	target, err := os.Readlink(filepath.Join(dir, dataLink))
	if err == nil {
		if !strings.HasPrefix(target, "..") || strings.ContainsAny(target, "/\\\x00") {
			return "", fmt.Errorf("%s in %s points to %q, not a generation dir", dataLink, dir, target)
		}
		return target, nil
	}
	if _, lerr := os.Lstat(filepath.Join(dir, dataLink)); lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
		return "", fmt.Errorf("reading %s in %s: %w", dataLink, dir, lerr)
	}
	return filesDigest(dir)
}

// filesDigest identifies the visible files by name, size and mtime.
func filesDigest(dir string) (string, error) {
	h := sha256.New()
	for _, name := range fileOrder {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(h, "%s -\n", name)
		case err != nil:
			return "", fmt.Errorf("checking %s in %s: %w", name, dir, err)
		default:
			fmt.Fprintf(h, "%s %d %d\n", name, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return "files-" + hex.EncodeToString(h.Sum(nil)[:8]), nil
}

// readGeneration reads the files of generation gen of dir: from the
// generation dir in the AtomicWriter layout, from dir otherwise.
func readGeneration(dir, gen string) (snapshot, error) {
	base := dir
	if !strings.HasPrefix(gen, "files-") {
		base = filepath.Join(dir, gen)
	}
	snap := snapshot{generation: gen, files: map[string][]byte{}, unsafe: map[string]string{}}
	for _, name := range fileOrder {
		data, why, err := readBundleFile(filepath.Join(base, name))
		switch {
		case err != nil:
			return snapshot{}, err
		case why != "":
			snap.unsafe[name] = why
		case data != nil:
			snap.files[name] = data
		}
	}
	return snap, nil
}

// readBundleFile reads one file. Absent reads as nil; something that is
// not a regular file (a FIFO would block the reader) or is implausibly
// large is not read, and why says so.
func readBundleFile(path string) (data []byte, why string, err error) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", nil
	case err != nil:
		return nil, "", fmt.Errorf("checking %s: %w", path, err)
	case !fi.Mode().IsRegular():
		return nil, fmt.Sprintf("is not a regular file (type %s)", fi.Mode().Type()), nil
	case fi.Size() > maxFileSize:
		return nil, fmt.Sprintf("is larger than %d bytes", maxFileSize), nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Sprintf("is larger than %d bytes", maxFileSize), nil
	}
	return data, "", nil
}

// Present reports which bundle files dir holds as regular files, following
// the visible symlinks into ..data, so a dangling link counts as absent. A
// missing dir is an empty set: services start before their certs exist.
func Present(dir string) (FileSet, error) {
	present := FileSet{}
	for _, name := range fileOrder {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err == nil && fi.Mode().IsRegular():
			present[name] = true
		case err == nil, errors.Is(err, fs.ErrNotExist):
		default:
			return nil, fmt.Errorf("checking %s in %s: %w", name, dir, err)
		}
	}
	return present, nil
}
