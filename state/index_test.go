package state

import (
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func serviceIDs(t *testing.T, s *Store, service string) []string {
	t.Helper()
	recs, err := s.ListService(service)
	if err != nil {
		t.Fatalf("ListService(%s): %v", service, err)
	}
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ContainerID)
	}
	return ids
}

func TestListServiceFollowsPutAndDelete(t *testing.T) {
	t.Parallel()
	s, _ := mustOpen(t, t.TempDir())
	for _, r := range []Record{{ContainerID: "a1", Service: "api"}, {ContainerID: "a2", Service: "api"}, {ContainerID: "w1", Service: "web"},
		{ContainerID: "x", Service: "ap"}} {
		mustPut(t, s, r)
	}
	if got := serviceIDs(t, s, "api"); !slices.Equal(got, []string{"a1", "a2"}) {
		t.Errorf("api: got %v, want [a1 a2] (and not ap's x, whose name is a prefix)", got)
	}
	mustPut(t, s, Record{ContainerID: "a2", Service: "web"}) // relabelled to another service
	if err := s.Delete("a1"); err != nil {
		t.Fatal(err)
	}
	if got := serviceIDs(t, s, "api"); len(got) != 0 {
		t.Errorf("api after a move and a delete: got %v, want none", got)
	}
	if got := serviceIDs(t, s, "web"); !slices.Equal(got, []string{"a2", "w1"}) {
		t.Errorf("web: got %v, want [a2 w1]", got)
	}
}

func TestOpeningAVersion1StoreBuildsTheServiceIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := bolt.Open(filepath.Join(dir, FileName), fileMode, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketContainers} {
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put([]byte(metaSchemaVersion), []byte("1")); err != nil {
			return err
		}
		for _, r := range []Record{{ContainerID: "a1", Service: "api"}, {ContainerID: "w1", Service: "web"}} {
			raw, _ := json.Marshal(r)
			if err := tx.Bucket(bucketContainers).Put([]byte(r.ContainerID), raw); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ := mustOpen(t, dir)
	if got := serviceIDs(t, s, "api"); !slices.Equal(got, []string{"a1"}) {
		t.Errorf("api after the upgrade: got %v, want [a1]", got)
	}
	if s.Rebuilt() {
		t.Error("Rebuilt: got true, want the version 1 store upgraded in place")
	}
}
