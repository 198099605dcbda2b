package state

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRecords(t *testing.T) {
	t.Parallel()
	tests := map[string]func(t *testing.T, s *Store){
		"should return a stored record unchanged except for UpdatedAt, which Put stamps": func(t *testing.T, s *Store) {
			want := newRecord("c1", withHistory(3))
			want.UpdatedAt = fixedNow.Add(-48 * time.Hour) // caller's value must be ignored
			mustPut(t, s, want)
			got, found, err := s.Get("c1")
			if err != nil || !found {
				t.Fatalf("Get: got found=%v err=%v, want found=true err=nil", found, err)
			}
			want.UpdatedAt = fixedNow
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("Get after Put:\ngot  %+v\nwant %+v", got, want)
			}
		},
		"should report a missing record as not found without an error": func(t *testing.T, s *Store) {
			got, found, err := s.Get("nope")
			if err != nil || found || !reflect.DeepEqual(got, Record{}) {
				t.Fatalf("Get(missing): got (%+v, %v, %v), want (zero, false, nil)", got, found, err)
			}
		},
		"should replace the previous record on Put": func(t *testing.T, s *Store) {
			mustPut(t, s, newRecord("c1"))
			r := newRecord("c1")
			r.ObservedLevel = "none"
			mustPut(t, s, r)
			got, _, _ := s.Get("c1")
			if got.ObservedLevel != "none" {
				t.Fatalf("ObservedLevel: got %q, want %q", got.ObservedLevel, "none")
			}
		},
		"should delete a record, and deleting it again is not an error": func(t *testing.T, s *Store) {
			mustPut(t, s, newRecord("c1"))
			for i := range 2 {
				if err := s.Delete("c1"); err != nil {
					t.Fatalf("Delete #%d: got %v, want nil", i+1, err)
				}
			}
			if _, found, _ := s.Get("c1"); found {
				t.Fatalf("Get after Delete: got found=true, want false")
			}
		},
		"should list every record ordered by container ID": func(t *testing.T, s *Store) {
			for _, id := range []string{"c3", "c1", "c2"} {
				mustPut(t, s, newRecord(id))
			}
			got, err := s.List()
			if err != nil {
				t.Fatalf("List: got %v, want nil", err)
			}
			if ids := recordIDs(got); !slices.Equal(ids, []string{"c1", "c2", "c3"}) {
				t.Fatalf("List IDs: got %v, want [c1 c2 c3]", ids)
			}
		},
		"should refuse a record without a container ID": func(t *testing.T, s *Store) {
			if err := s.Put(newRecord("")); err == nil {
				t.Fatalf("Put(empty ID): got nil error, want an error")
			}
		},
	}
	for name, run := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, _ := mustOpen(t, t.TempDir())
			run(t, s)
		})
	}
}

func TestUndecodableRecordsAreSkippedNotDeleted(t *testing.T) {
	t.Parallel()
	s, logs := mustOpen(t, t.TempDir())
	mustPut(t, s, newRecord("good"))
	putRaw(t, s, bucketContainers, "bad", []byte("{not json"))

	got, err := s.List()
	if err != nil {
		t.Fatalf("List: got %v, want nil", err)
	}
	if ids := recordIDs(got); !slices.Equal(ids, []string{"good"}) {
		t.Fatalf("List IDs: got %v, want [good]", ids)
	}
	warns := logs.withLevel(t, "WARN")
	if len(warns) != 1 || warns[0][logKeyContainerID] != "bad" || warns[0][logKeyError] == nil {
		t.Fatalf("WARN lines: got %v, want one with %s=bad and an %s", warns, logKeyContainerID, logKeyError)
	}
	if _, found, err := s.Get("bad"); found || err != nil {
		t.Fatalf("Get(bad): got found=%v err=%v, want found=false err=nil", found, err)
	}
	for range 2 { // reading must not have removed it
		bad, err := s.Undecodable()
		if err != nil || !slices.Equal(bad, []string{"bad"}) {
			t.Fatalf("Undecodable: got (%v, %v), want ([bad], nil)", bad, err)
		}
	}
	mustPut(t, s, newRecord("bad"))
	if bad, _ := s.Undecodable(); len(bad) != 0 {
		t.Fatalf("Undecodable after Put over it: got %v, want none", bad)
	}
}

func TestMeta(t *testing.T) {
	t.Parallel()
	type progress struct {
		Phase string
		Since time.Time
	}
	tests := map[string]func(t *testing.T, s *Store){
		"should round-trip a JSON value": func(t *testing.T, s *Store) {
			want := progress{Phase: "distributing", Since: fixedNow}
			if err := s.PutMeta("ca_rollover", want); err != nil {
				t.Fatalf("PutMeta: got %v, want nil", err)
			}
			var got progress
			found, err := s.GetMeta("ca_rollover", &got)
			if err != nil || !found || got != want {
				t.Fatalf("GetMeta: got (%+v, %v, %v), want (%+v, true, nil)", got, found, err, want)
			}
		},
		"should report a missing key as not found and leave v untouched": func(t *testing.T, s *Store) {
			got := progress{Phase: "untouched"}
			found, err := s.GetMeta("absent", &got)
			if err != nil || found || got.Phase != "untouched" {
				t.Fatalf("GetMeta(absent): got (%+v, %v, %v), want (untouched, false, nil)", got, found, err)
			}
		},
		"should return an error when the value does not decode into v": func(t *testing.T, s *Store) {
			if err := s.PutMeta("k", "a string"); err != nil {
				t.Fatalf("PutMeta: got %v, want nil", err)
			}
			var got progress
			if found, err := s.GetMeta("k", &got); !found || err == nil {
				t.Fatalf("GetMeta(mismatched type): got found=%v err=%v, want found=true and an error", found, err)
			}
		},
		"should refuse to overwrite the schema version": func(t *testing.T, s *Store) {
			if err := s.PutMeta(metaSchemaVersion, 99); err == nil {
				t.Fatalf("PutMeta(%s): got nil error, want an error", metaSchemaVersion)
			}
			var v int
			if _, err := s.GetMeta(metaSchemaVersion, &v); err != nil || v != SchemaVersion {
				t.Fatalf("schema version: got (%d, %v), want (%d, nil)", v, err, SchemaVersion)
			}
		},
	}
	for name, run := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, _ := mustOpen(t, t.TempDir())
			run(t, s)
		})
	}
}

func TestReopenKeepsRecordsAndMeta(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nested", "state") // Open must create it
	o, _ := testOptions()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("first Open: got %v, want nil", err)
	}
	want := newRecord("c1", withHistory(2))
	mustPut(t, s, want)
	if err := s.PutMeta("ca_rollover", "done"); err != nil {
		t.Fatalf("PutMeta: got %v, want nil", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}

	s2, _ := mustOpen(t, dir)
	if s2.Rebuilt() {
		t.Fatalf("Rebuilt after a clean reopen: got true, want false")
	}
	got, found, err := s2.Get("c1")
	want.UpdatedAt = fixedNow
	if err != nil || !found || !reflect.DeepEqual(got, want) {
		t.Fatalf("Get after reopen: got (%+v, %v, %v), want (%+v, true, nil)", got, found, err, want)
	}
	var meta string
	if found, err := s2.GetMeta("ca_rollover", &meta); !found || err != nil || meta != "done" {
		t.Fatalf("GetMeta after reopen: got (%q, %v, %v), want (done, true, nil)", meta, found, err)
	}
	checkMode(t, dir, dirMode)
	checkMode(t, filepath.Join(dir, FileName), fileMode)
}

func TestOpenTightensALooseFileMode(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := mustOpen(t, dir)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	path := filepath.Join(dir, FileName)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	mustOpen(t, dir)
	checkMode(t, path, fileMode)
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Fatalf("mode of %s: got %v, want %v", path, got, want)
	}
}

func mustPut(t *testing.T, s *Store, r Record) {
	t.Helper()
	if err := s.Put(r); err != nil {
		t.Fatalf("Put(%s): got %v, want nil", r.ContainerID, err)
	}
}

// putRaw writes bytes the public API would never write, to simulate damage.
func putRaw(t *testing.T, s *Store, bucket []byte, key string, value []byte) {
	t.Helper()
	err := s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucket).Put([]byte(key), value)
	})
	if err != nil {
		t.Fatalf("writing raw %s/%s: %v", bucket, key, err)
	}
}

func recordIDs(rs []Record) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ContainerID
	}
	return ids
}
