package state

import (
	"bytes"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// bucketServices indexes records by service: a key is the service, a NUL,
// then the container ID, and the value is empty. Put and Delete keep it in
// step with the records in the same transaction, so finding the replicas of
// one service costs a prefix scan over them alone, not a decode of every
// record in the store.
var bucketServices = []byte("services")

func serviceKey(service, id string) []byte {
	return append(append([]byte(service), 0), id...)
}

// recordService decodes only the Service field of a stored record.
func recordService(raw []byte) (string, bool) {
	var r struct{ Service string }
	if raw == nil || json.Unmarshal(raw, &r) != nil {
		return "", false
	}
	return r.Service, true
}

// indexPut moves id's index entry from its old service (if any) to service.
func indexPut(tx *bolt.Tx, id, service string, old []byte) error {
	idx := tx.Bucket(bucketServices)
	if prev, ok := recordService(old); ok && prev != service {
		if err := idx.Delete(serviceKey(prev, id)); err != nil {
			return err
		}
	}
	return idx.Put(serviceKey(service, id), nil)
}

// indexDelete drops id's index entry.
func indexDelete(tx *bolt.Tx, id string, old []byte) error {
	if prev, ok := recordService(old); ok {
		return tx.Bucket(bucketServices).Delete(serviceKey(prev, id))
	}
	return nil
}

// ListService returns the records of service's containers that decode,
// ordered by container ID.
func (s *Store) ListService(service string) ([]Record, error) {
	var out []Record
	prefix := append([]byte(service), 0)
	err := s.db.View(func(tx *bolt.Tx) error {
		recs := tx.Bucket(bucketContainers)
		c := tx.Bucket(bucketServices).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			id := k[len(prefix):]
			var r Record
			if err := json.Unmarshal(recs.Get(id), &r); err != nil {
				s.warnUndecodable(string(id), err)
				continue
			}
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing records of service %s: %w", service, err)
	}
	return s.notes.overlay(out), nil
}

// buildServiceIndex is the migration from schema version 1, which had no
// index: it indexes every record already stored.
func buildServiceIndex(tx *bolt.Tx) error {
	if _, err := tx.CreateBucketIfNotExists(bucketServices); err != nil {
		return err
	}
	return tx.Bucket(bucketContainers).ForEach(func(k, v []byte) error {
		if service, ok := recordService(v); ok {
			return tx.Bucket(bucketServices).Put(serviceKey(service, string(k)), nil)
		}
		return nil
	})
}
