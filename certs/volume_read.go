package certs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// ReadBundle reads the current bundle of service. It resolves ..data once
// and reads every file from that one generation dir, so the result never
// mixes two generations even if a write races with it. Generation,
// WrittenAt (the generation dir's mtime) and the key modes are filled in.
//
// An absent service dir or ..data, or a ..data that does not point at a
// generation dir, is an error wrapping fs.ErrNotExist: writing a new bundle
// repairs all of these. A file missing from the generation, or one that is
// not a regular file or is implausibly large, is returned as a nil slice so
// that Validate reports it and the caller reissues.
func (v *Volume) ReadBundle(service string) (*BundleFiles, error) {
	if err := ValidateServiceName(service); err != nil {
		return nil, err
	}
	defer v.lock(service)()
	sub, err := v.openServiceDir(service)
	if err != nil {
		return nil, fmt.Errorf("reading bundle of service %s: %w", service, err)
	}
	defer sub.Close()
	b, err := readCurrent(sub)
	if err != nil {
		return nil, fmt.Errorf("reading bundle of service %s: %w", service, err)
	}
	return b, nil
}

// readCurrent reads the generation ..data points at inside the service dir.
func readCurrent(sub *os.Root) (*BundleFiles, error) {
	gen, gr, gfi, err := resolveGeneration(sub)
	if err != nil {
		return nil, err
	}
	defer gr.Close()
	b := &BundleFiles{Generation: gen, WrittenAt: gfi.ModTime()}
	for _, name := range bundleFileNames {
		data, fi, err := readRegular(gr, name)
		if err != nil {
			return nil, fmt.Errorf("generation %s: %w", gen, err)
		}
		*bundleFilePtr(b, name) = data
		if fi == nil {
			continue
		}
		switch name {
		case FileServerKey:
			b.ServerKeyMode = fi.Mode().Perm()
			b.ServerKeyUID, b.ServerKeyGID = fileOwner(fi)
		case FileClientKey:
			b.ClientKeyMode = fi.Mode().Perm()
			b.ClientKeyUID, b.ClientKeyGID = fileOwner(fi)
		}
	}
	return b, nil
}

// resolveGeneration reads the ..data link once and opens its target as an
// os.Root, so every later read is confined to that single generation dir.
// The target must be a plain generation name (no slashes, so it cannot lead
// to /etc or to another service) naming a real directory.
func resolveGeneration(sub *os.Root) (gen string, gr *os.Root, fi fs.FileInfo, err error) {
	lfi, err := sub.Lstat(dataLink)
	if err != nil {
		return "", nil, nil, err
	}
	if lfi.Mode()&fs.ModeSymlink == 0 {
		return "", nil, nil, fmt.Errorf("%s is not a symlink (type %s): %w", dataLink, lfi.Mode().Type(), fs.ErrNotExist)
	}
	gen, err = sub.Readlink(dataLink)
	if err != nil {
		return "", nil, nil, err
	}
	if !isGenerationName(gen) {
		return "", nil, nil, fmt.Errorf("%s points to %q, not a generation dir: %w", dataLink, gen, fs.ErrNotExist)
	}
	fi, err = sub.Lstat(gen)
	if err != nil {
		return "", nil, nil, fmt.Errorf("%s points to %q: %w", dataLink, gen, err)
	}
	if !fi.IsDir() {
		return "", nil, nil, fmt.Errorf("%s points to %q, which is not a directory (type %s): %w",
			dataLink, gen, fi.Mode().Type(), fs.ErrNotExist)
	}
	gr, err = sub.OpenRoot(gen)
	if err != nil {
		return "", nil, nil, err
	}
	st, err := gr.Stat(".")
	if err == nil && !os.SameFile(fi, st) {
		err = fmt.Errorf("generation %s changed while it was being opened: %w", gen, fs.ErrNotExist)
	}
	if err != nil {
		gr.Close()
		return "", nil, nil, err
	}
	return gen, gr, fi, nil
}

// isGenerationName reports whether name looks like a generation dir written
// by generationName: "..", then the timestamp's leading digit, and no path
// separators. It excludes ..data, ..data_tmp and temporary links.
func isGenerationName(name string) bool {
	return len(name) > 2 && strings.HasPrefix(name, "..") &&
		name[2] >= '0' && name[2] <= '9' &&
		!strings.ContainsAny(name, "/\\\x00")
}

// readRegular reads name from the generation root gr if it is a regular file
// of plausible size; otherwise it returns nil data and a nil error (the file
// is treated as missing). A missing file is also nil, nil. The FileInfo is
// the opened file's, for its mode and owner.
func readRegular(gr *os.Root, name string) ([]byte, fs.FileInfo, error) {
	fi, err := gr.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxBundleFileSize {
		return nil, nil, nil
	}
	f, err := gr.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if !os.SameFile(fi, st) {
		return nil, nil, nil // swapped for something else after Lstat: not ours
	}
	data, err := io.ReadAll(io.LimitReader(f, maxBundleFileSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(data) > maxBundleFileSize {
		return nil, nil, nil
	}
	return data, st, nil
}
