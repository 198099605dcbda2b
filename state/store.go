package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Log keys, constant so log queries don't drift.
const (
	logKeyPath        = "path"
	logKeyMovedTo     = "moved_to"
	logKeyError       = "error"
	logKeyContainerID = "container_id"
	logKeyFromVersion = "from_version"
	logKeyToVersion   = "to_version"
)

// Store is the open state file. Its methods are safe for concurrent use;
// bbolt serialises writers.
type Store struct {
	db      *bolt.DB
	path    string
	log     *slog.Logger
	now     func() time.Time
	rebuilt bool
	cache   recordCache
	notes   notes
}

// Close writes what was noted and releases the file and its lock.
func (s *Store) Close() error {
	flushErr := s.Flush()
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing state store %s: %w", s.path, err)
	}
	return flushErr
}

// Rebuilt reports whether Open found the previous file unusable, moved it
// aside and started empty. Callers use it to treat every container as new.
func (s *Store) Rebuilt() bool { return s.rebuilt }

// Path is the store's file, for logs.
func (s *Store) Path() string { return s.path }

// Get returns the record for container id. A record that does not decode is
// treated as absent (found=false) and logged at WARN: the store is a cache,
// so the caller rebuilds it from Docker and the next Put replaces the bad
// bytes. Nothing is deleted here.
func (s *Store) Get(id string) (Record, bool, error) {
	if r, ok := s.notes.get(id); ok {
		return r, true, nil
	}
	var raw []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketContainers).Get([]byte(id)); v != nil {
			raw = append([]byte(nil), v...) // v is only valid inside the tx
		}
		return nil
	})
	if err != nil {
		return Record{}, false, fmt.Errorf("reading record %s: %w", id, err)
	}
	if raw == nil {
		return Record{}, false, nil
	}
	var r Record
	if err := json.Unmarshal(raw, &r); err != nil {
		s.warnUndecodable(id, err)
		return Record{}, false, nil
	}
	return r, true, nil
}

// Put stores r under r.ContainerID, replacing any previous record. It sets
// r.UpdatedAt to Options.Now() and enforces the History and Transitions caps
// on the stored copy.
func (s *Store) Put(r Record) error {
	if r.ContainerID == "" {
		return errors.New("storing record: empty container id")
	}
	r.enforceCaps()
	r.UpdatedAt = s.now()
	raw, err := marshalRecord(r)
	if err != nil {
		return err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		s.notes.drop(r.ContainerID)
		recs := tx.Bucket(bucketContainers)
		if err := indexPut(tx, r.ContainerID, r.Service, recs.Get([]byte(r.ContainerID))); err != nil {
			return err
		}
		return recs.Put([]byte(r.ContainerID), raw)
	})
	if err != nil {
		return fmt.Errorf("storing record %s: %w", r.ContainerID, err)
	}
	s.cache.put(r.ContainerID, raw)
	return nil
}

// Delete removes the record for container id, decodable or not. Deleting a
// missing record is not an error.
func (s *Store) Delete(id string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		s.notes.drop(id)
		recs := tx.Bucket(bucketContainers)
		if err := indexDelete(tx, id, recs.Get([]byte(id))); err != nil {
			return err
		}
		return recs.Delete([]byte(id))
	})
	if err != nil {
		return fmt.Errorf("deleting record %s: %w", id, err)
	}
	s.cache.delete(id)
	return nil
}

// List returns every record that decodes, ordered by container ID. Records
// that don't decode are skipped with one WARN line each and left in place;
// Undecodable lists them.
func (s *Store) List() ([]Record, error) {
	if out, ok := s.cache.list(); ok {
		return s.notes.overlay(out), nil
	}
	v := s.cache.version()
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				s.warnUndecodable(string(k), err)
				return nil
			}
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing records: %w", err)
	}
	s.cache.fill(v, out)
	return s.notes.overlay(out), nil
}

// marshalRecord is a record as stored.
func marshalRecord(r Record) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding record %s: %w", r.ContainerID, err)
	}
	return raw, nil
}

// Undecodable returns the IDs of records that don't decode, ordered. It
// exists so a caller can count them (or Delete the ones whose container is
// gone, which the garbage collection pass does anyway) without List having to
// choose between failing and dropping data silently.
func (s *Store) Undecodable() ([]string, error) {
	var ids []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
			var r Record
			if json.Unmarshal(v, &r) != nil {
				ids = append(ids, string(k))
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("listing undecodable records: %w", err)
	}
	return ids, nil
}

func (s *Store) warnUndecodable(id string, err error) {
	s.log.Warn("skipping state record that does not decode; it will be rebuilt",
		logKeyPath, s.path, logKeyContainerID, id, logKeyError, err)
}

// GetMeta decodes the JSON stored under key into v. found is false (and v
// untouched) if the key is absent. A value that doesn't decode into v is an
// error: meta holds progress (e.g. a CA rollover) that callers must not
// silently forget.
func (s *Store) GetMeta(key string, v any) (found bool, err error) {
	var raw []byte
	err = s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketMeta).Get([]byte(key)); b != nil {
			raw = append([]byte(nil), b...)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("reading meta %q: %w", key, err)
	}
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("decoding meta %q: %w", key, err)
	}
	return true, nil
}

// PutMeta stores v as JSON under key. The schema version key is reserved.
func (s *Store) PutMeta(key string, v any) error {
	if key == "" || key == metaSchemaVersion {
		return fmt.Errorf("storing meta %q: reserved or empty key", key)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding meta %q: %w", key, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put([]byte(key), raw)
	})
	if err != nil {
		return fmt.Errorf("storing meta %q: %w", key, err)
	}
	return nil
}
