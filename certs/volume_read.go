package certs

import (
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
// repairs all of these. A file missing from the generation or implausibly
// large is returned as a nil slice, and one that is not a regular file with
// one link (a FIFO, a symlink, a hard link...) as nil and in Unsafe, so
// that Validate reports it and the caller reissues. No read blocks or
// follows a link, whatever the service put in its directory.
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
// Unsafe files are listed in Unsafe rather than read.
func readCurrent(sub *os.Root) (*BundleFiles, error) {
	gen, gr, gfi, err := resolveGeneration(sub)
	if err != nil {
		return nil, err
	}
	defer gr.Close()
	entries, err := openEntries(gr)
	if err != nil {
		return nil, fmt.Errorf("generation %s: %w", gen, err)
	}
	defer closeEntries(entries)
	b := &BundleFiles{Generation: gen, WrittenAt: gfi.ModTime(), Unsafe: unsafeEntries(entries)}
	for _, e := range entries {
		data, err := readEntry(e)
		if err != nil {
			return nil, fmt.Errorf("generation %s: %w", gen, err)
		}
		if data == nil {
			continue
		}
		*bundleFilePtr(b, e.name) = data
		switch e.name {
		case FileServerKey:
			b.ServerKeyMode = e.fi.Mode().Perm()
			b.ServerKeyUID, b.ServerKeyGID = fileOwner(e.fi)
		case FileClientKey:
			b.ClientKeyMode = e.fi.Mode().Perm()
			b.ClientKeyUID, b.ClientKeyGID = fileOwner(e.fi)
		}
	}
	return b, nil
}

// resolveGeneration reads the ..data link once and opens its target as an
// os.Root, so every later read is confined to that single generation dir.
// The target must be a plain generation name (no slashes, so it cannot lead
// to /etc or to another service) naming a real directory. Nothing here
// blocks on a FIFO the service swaps in for the directory.
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
	gr, same, err := openDirRoot(sub, gen, fi)
	if err == nil && !same {
		err = fmt.Errorf("generation %s changed while it was being opened: %w", gen, fs.ErrNotExist)
	}
	if err != nil {
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

// readEntry reads an entry opened by openEntry. A missing or unsafe entry,
// or one of implausible size, reads as nil, so that Validate reports it.
func readEntry(e entry) ([]byte, error) {
	if e.f == nil || e.fi.Size() > maxBundleFileSize {
		return nil, nil
	}
	data, err := io.ReadAll(io.LimitReader(e.f, maxBundleFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", e.name, err)
	}
	if len(data) > maxBundleFileSize {
		return nil, nil
	}
	return data, nil
}
