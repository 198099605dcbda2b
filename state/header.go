package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
)

// bbolt trusts its meta page and reads the mmap wherever it points. A file
// truncated after a valid meta page makes bolt.Open read past the end of the
// file (SIGBUS) or even past the end of its mapping (arbitrary memory, then a
// panic), and after such a panic the leaked mapping keeps the file locked.
// So before bolt.Open we check, with plain reads, that the pages the meta
// page refers to exist. Layout of go.etcd.io/bbolt/internal/common (file
// format version 2, unchanged since boltdb), native byte order:
//
//	page header (16 bytes): id u64, flags u16, count u16, overflow u32
//	meta (after the header): magic u32, version u32, pageSize u32, flags u32,
//	  root u64, sequence u64, freelist u64, pgid u64, txid u64,
//	  checksum u64 = FNV-64a of the 56 bytes before it
const (
	boltPageHeaderSize = 16
	boltMetaSize       = 64
	boltMagic          = 0xED0CDAED
	boltVersion        = 2
	boltNoFreelist     = ^uint64(0)
	boltMinPageSize    = 1024
	boltMaxPageSize    = 1024 << 14 // bbolt probes page sizes up to 16 MiB
)

type boltMeta struct {
	pageSize             uint64
	root, freelist, pgid uint64
	txid                 uint64
}

// checkFileBounds returns an error wrapping errUnusable if the meta page bbolt
// would use refers to pages beyond the end of the file. Files without a valid
// meta page are left to bolt.Open, which rejects them cleanly. Errors opening
// or reading the file are returned as they are: unreadable is not corrupt.
func checkFileBounds(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("opening state store: %w", err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	size := uint64(fi.Size())
	m, ok, err := pickBoltMeta(f, size)
	if err != nil || !ok {
		return err
	}
	if m.pgid > size/m.pageSize {
		return fmt.Errorf("%w: %s is %d bytes but its meta page needs %d pages of %d: truncated",
			errUnusable, path, size, m.pgid, m.pageSize)
	}
	if m.root >= m.pgid || (m.freelist != boltNoFreelist && m.freelist >= m.pgid) {
		return fmt.Errorf("%w: %s: meta page points beyond the last page (root %d, freelist %d, pages %d)",
			errUnusable, path, m.root, m.freelist, m.pgid)
	}
	if m.freelist != boltNoFreelist {
		return checkFreelistExtent(f, path, m)
	}
	return nil
}

// pickBoltMeta finds the meta page bbolt would use: of the two meta pages,
// the valid one with the higher txid.
func pickBoltMeta(f *os.File, size uint64) (boltMeta, bool, error) {
	m0, ok0, err := readBoltMeta(f, 0)
	if err != nil {
		return boltMeta{}, false, err
	}
	// The second meta page sits one page in. Without a valid first page we
	// don't know the page size, so probe like bbolt's getPageSize does.
	offsets := []uint64{m0.pageSize}
	if !ok0 {
		offsets = nil
		for ps := uint64(boltMinPageSize); ps <= boltMaxPageSize && ps < size; ps <<= 1 {
			offsets = append(offsets, ps)
		}
	}
	for _, off := range offsets {
		m1, ok1, err := readBoltMeta(f, off)
		if err != nil {
			return boltMeta{}, false, err
		}
		if ok1 && (!ok0 || m1.txid > m0.txid) {
			return m1, true, nil
		}
		if ok1 || ok0 {
			break
		}
	}
	return m0, ok0, nil
}

// readBoltMeta decodes the meta page at off; ok is false for anything that is
// not a valid, checksummed meta page (including a short file).
func readBoltMeta(f *os.File, off uint64) (m boltMeta, ok bool, err error) {
	var buf [boltPageHeaderSize + boltMetaSize]byte
	if _, err := f.ReadAt(buf[:], int64(off)); err != nil {
		if errors.Is(err, io.EOF) {
			return boltMeta{}, false, nil
		}
		return boltMeta{}, false, fmt.Errorf("reading %s: %w", f.Name(), err)
	}
	b := buf[boltPageHeaderSize:]
	ne := binary.NativeEndian
	h := fnv.New64a()
	_, _ = h.Write(b[:56])
	if ne.Uint32(b[0:]) != boltMagic || ne.Uint32(b[4:]) != boltVersion || ne.Uint64(b[56:]) != h.Sum64() {
		return boltMeta{}, false, nil
	}
	m = boltMeta{
		pageSize: uint64(ne.Uint32(b[8:])),
		root:     ne.Uint64(b[16:]),
		freelist: ne.Uint64(b[32:]),
		pgid:     ne.Uint64(b[40:]),
		txid:     ne.Uint64(b[48:]),
	}
	if m.pageSize < boltMinPageSize || m.pageSize > boltMaxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return boltMeta{}, false, nil
	}
	return m, true, nil
}

// checkFreelistExtent verifies the freelist page's element count fits in the
// pages it claims, and those pages exist: bbolt reads that many IDs at Open
// without checking.
func checkFreelistExtent(f *os.File, path string, m boltMeta) error {
	var hdr [boltPageHeaderSize]byte
	if _, err := f.ReadAt(hdr[:], int64(m.freelist*m.pageSize)); err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	ne := binary.NativeEndian
	count := uint64(ne.Uint16(hdr[10:]))
	overflow := uint64(ne.Uint32(hdr[12:]))
	if count == 0xFFFF { // overflowed count: the real count is the first element
		var first [8]byte
		if _, err := f.ReadAt(first[:], int64(m.freelist*m.pageSize+boltPageHeaderSize)); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
		count = ne.Uint64(first[:])
		if count != ^uint64(0) {
			count++ // the count element itself
		}
	}
	pages := overflow + 1
	if overflow >= m.pgid || m.freelist+pages > m.pgid || count > (pages*m.pageSize-boltPageHeaderSize)/8 {
		return fmt.Errorf("%w: %s: freelist page %d claims %d ids in %d pages of %d, file has %d pages",
			errUnusable, path, m.freelist, count, pages, m.pageSize, m.pgid)
	}
	return nil
}
