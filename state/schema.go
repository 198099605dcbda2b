package state

import (
	"encoding/json"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// SchemaVersion is the layout this build reads and writes. Bump it together
// with a new entry in migrations whenever a stored layout changes in a way an
// older reader would misread.
const SchemaVersion = 2

// Bucket and key names. Records live in their own bucket so that List never
// has to skip meta keys, and meta keys can never collide with container IDs.
var (
	bucketMeta       = []byte("meta")
	bucketContainers = []byte("containers")
)

// metaSchemaVersion is the meta key holding the schema version (a JSON
// number). PutMeta refuses it so callers cannot corrupt the version.
const metaSchemaVersion = "schema_version"

// migration upgrades a store by exactly one schema version inside the
// caller's write transaction, so a failed migration leaves the file as it was.
type migration func(tx *bolt.Tx) error

// migrations[i] upgrades version i+1 to i+2; len(migrations) must be
// SchemaVersion-1 (checked by a test).
var migrations = []migration{
	buildServiceIndex, // 1 -> 2: records indexed by service
}

// errUnusable marks a file that opened but cannot be interpreted: corrupt
// pages, a failed consistency check, a missing, undecodable or unknown schema
// version. Only errors wrapping it cause Open to move the file aside.
var errUnusable = errors.New("state store is unusable")

// upgradeSchema brings the store in tx to version target using steps, or
// initialises an empty file. It returns the version found (0 for a new file).
func upgradeSchema(tx *bolt.Tx, target int, steps []migration) (found int, err error) {
	if len(steps) != target-1 {
		return 0, fmt.Errorf("have %d migrations for schema version %d, want %d", len(steps), target, target-1)
	}
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		if !isEmpty(tx) {
			return 0, fmt.Errorf("%w: data present but no %q bucket", errUnusable, bucketMeta)
		}
		return 0, initSchema(tx, target)
	}
	raw := meta.Get([]byte(metaSchemaVersion))
	if raw == nil {
		return 0, fmt.Errorf("%w: no %s in the meta bucket", errUnusable, metaSchemaVersion)
	}
	if err := json.Unmarshal(raw, &found); err != nil {
		return 0, fmt.Errorf("%w: decoding %s %q: %w", errUnusable, metaSchemaVersion, raw, err)
	}
	if found < 1 || found > target {
		// A newer version was written by a newer controller (a downgrade);
		// guessing at its layout could misremember, and this is only a cache.
		return found, fmt.Errorf("%w: schema version %d, this build understands 1 to %d", errUnusable, found, target)
	}
	for v := found; v < target; v++ {
		if err := steps[v-1](tx); err != nil {
			return found, fmt.Errorf("%w: migrating schema version %d to %d: %w", errUnusable, v, v+1, err)
		}
	}
	for _, name := range [][]byte{bucketContainers, bucketServices} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return found, fmt.Errorf("creating %s bucket: %w", name, err)
		}
	}
	if found != target {
		return found, putSchemaVersion(tx, target)
	}
	return found, nil
}

func initSchema(tx *bolt.Tx, version int) error {
	for _, name := range [][]byte{bucketMeta, bucketContainers, bucketServices} {
		if _, err := tx.CreateBucket(name); err != nil {
			return fmt.Errorf("creating %s bucket: %w", name, err)
		}
	}
	return putSchemaVersion(tx, version)
}

func putSchemaVersion(tx *bolt.Tx, version int) error {
	raw, err := json.Marshal(version)
	if err != nil {
		return fmt.Errorf("encoding schema version: %w", err)
	}
	if err := tx.Bucket(bucketMeta).Put([]byte(metaSchemaVersion), raw); err != nil {
		return fmt.Errorf("writing schema version: %w", err)
	}
	return nil
}

// isEmpty reports whether the file has no buckets at all, i.e. bbolt just
// created it.
func isEmpty(tx *bolt.Tx) bool {
	k, _ := tx.Cursor().First()
	return k == nil
}
