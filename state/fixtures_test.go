package state

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// populatedStore writes n records (many pages' worth) and returns the file
// path and how many bytes of it bbolt uses (the file itself is larger:
// bbolt grows it in steps).
func populatedStore(t *testing.T, dir string, n int) (path string, used int64) {
	t.Helper()
	s := openClosable(t, dir)
	// One transaction: n Puts would fsync n times.
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i := range n {
			raw, err := json.Marshal(newRecord(fmt.Sprintf("%064d", i), withHistory(MaxHistory)))
			if err != nil {
				return err
			}
			if err := tx.Bucket(bucketContainers).Put(fmt.Appendf(nil, "%064d", i), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, FileName), used
}

// readMeta returns the meta page bbolt would use, to aim damage at real pages.
func readMeta(t *testing.T, path string) boltMeta {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = f.Close() }()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, ok, err := pickBoltMeta(f, uint64(fi.Size()))
	if err != nil || !ok {
		t.Fatalf("reading meta of %s: got ok=%v err=%v, want a valid meta page", path, ok, err)
	}
	return m
}

func overwrite(t *testing.T, path string, off int64, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// closedStoreWith creates a valid store, applies edit in a write transaction
// and closes it.
func closedStoreWith(t *testing.T, dir string, edit func(tx *bolt.Tx) error) *Store {
	t.Helper()
	s := openClosable(t, dir)
	mustPut(t, s, newRecord("c1"))
	if err := s.db.Update(edit); err != nil {
		t.Fatalf("editing store: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return s
}

func openClosable(t *testing.T, dir string) *Store {
	t.Helper()
	o, _ := testOptions()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func writeStateFile(t *testing.T, dir string, data []byte) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func readStateFile(t *testing.T, dir string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func movedAside(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, name := range readDirNames(t, dir) {
		if strings.HasPrefix(name, FileName+corruptInfix) {
			out = append(out, name)
		}
	}
	return out
}

func readDirNames(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}
