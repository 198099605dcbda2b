package state

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func TestEveryOlderSchemaVersionHasAMigration(t *testing.T) {
	t.Parallel()
	if got, want := len(migrations), SchemaVersion-1; got != want {
		t.Fatalf("len(migrations): got %d, want %d (one per version below SchemaVersion)", got, want)
	}
}

func TestUpgradeSchema(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		stored  int // schema version written before upgrading; 0 = empty file
		target  int
		failAt  int // 1-based step that fails; 0 = none
		wantRan []int
		// wantFound is the returned version; wantStored the version on disk after.
		wantFound, wantStored int
		wantUnusable          bool // error wraps errUnusable
	}{
		"should initialise an empty file at the target version without migrating": {
			stored: 0, target: 3, wantFound: 0, wantStored: 3,
		},
		"should run every step from the stored version in order": {
			stored: 1, target: 3, wantRan: []int{1, 2}, wantFound: 1, wantStored: 3,
		},
		"should run only the missing steps": {
			stored: 2, target: 3, wantRan: []int{2}, wantFound: 2, wantStored: 3,
		},
		"should do nothing at the target version": {
			stored: 3, target: 3, wantFound: 3, wantStored: 3,
		},
		"should refuse a newer version as unusable and leave it alone": {
			stored: 4, target: 3, wantFound: 4, wantStored: 4, wantUnusable: true,
		},
		"should report a failed step as unusable and keep the old version": {
			stored: 1, target: 3, failAt: 2, wantRan: []int{1, 2}, wantFound: 1, wantStored: 1, wantUnusable: true,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db, err := bolt.Open(filepath.Join(t.TempDir(), FileName), fileMode, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			if tc.stored > 0 {
				if err := db.Update(func(tx *bolt.Tx) error { return initSchema(tx, tc.stored) }); err != nil {
					t.Fatal(err)
				}
			}
			var ran []int
			steps := make([]migration, tc.target-1)
			for i := range steps {
				steps[i] = func(tx *bolt.Tx) error {
					ran = append(ran, i+1)
					if i+1 == tc.failAt {
						return errors.New("boom")
					}
					return nil
				}
			}
			var found int
			err = db.Update(func(tx *bolt.Tx) error {
				var err error
				found, err = upgradeSchema(tx, tc.target, steps)
				return err
			})
			if got := errors.Is(err, errUnusable); got != tc.wantUnusable {
				t.Fatalf("errors.Is(%v, errUnusable): got %v, want %v", err, got, tc.wantUnusable)
			}
			if !tc.wantUnusable && err != nil {
				t.Fatalf("upgradeSchema: got %v, want nil", err)
			}
			if found != tc.wantFound {
				t.Fatalf("found version: got %d, want %d", found, tc.wantFound)
			}
			if !slices.Equal(ran, tc.wantRan) {
				t.Fatalf("steps run: got %v, want %v", ran, tc.wantRan)
			}
			if got := storedVersion(t, db); got != tc.wantStored {
				t.Fatalf("stored version: got %d, want %d", got, tc.wantStored)
			}
		})
	}
}

func TestUpgradeSchemaRejectsAMigrationListOfTheWrongLength(t *testing.T) {
	t.Parallel()
	db, err := bolt.Open(filepath.Join(t.TempDir(), FileName), fileMode, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := upgradeSchema(tx, 3, nil)
		return err
	})
	if err == nil || errors.Is(err, errUnusable) {
		t.Fatalf("upgradeSchema with no steps for version 3: got %v, want a programming error not wrapping errUnusable", err)
	}
}

func storedVersion(t *testing.T, db *bolt.DB) int {
	t.Helper()
	var v int
	err := db.View(func(tx *bolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bucketMeta).Get([]byte(metaSchemaVersion)), &v)
	})
	if err != nil {
		t.Fatalf("reading stored version: %v", err)
	}
	return v
}
