package state

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// notes are records stored in memory only, by Note, until the next Flush
// writes them all in one transaction. Every read (Get, List, ListService)
// sees them at once. They are for what a crash may lose without harm: a
// container probed every 30 s changes only its last probe's time on each
// probe, and one fsync per probe per container is what a thousand
// containers cannot afford.
type notes struct {
	mu   sync.Mutex
	recs map[string]noted
	seq  uint64
}

// noted is one note and the order it was taken in, so a flush drops only
// the notes it wrote.
type noted struct {
	rec Record
	seq uint64
}

func (n *notes) get(id string) (Record, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.recs[id]
	return e.rec.clone(), ok
}

func (n *notes) put(r Record) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.recs == nil {
		n.recs = map[string]noted{}
	}
	n.seq++
	n.recs[r.ContainerID] = noted{rec: r.clone(), seq: n.seq}
}

// drop forgets id's note: a Put or a Delete supersedes it.
func (n *notes) drop(id string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.recs, id)
}

func (n *notes) empty() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.recs) == 0
}

func (n *notes) snapshot() map[string]noted {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.recs)
}

// flushed forgets the notes of snap that were not noted again since, and
// hands what was written for them to the record cache. A note superseded
// meanwhile (noted again, or dropped by a Put or Delete) keeps its newer
// state, in the notes or in the cache.
func (n *notes) flushed(snap map[string]noted, raws map[string][]byte, cache *recordCache) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, e := range snap {
		if cur, ok := n.recs[id]; ok && cur.seq == e.seq {
			delete(n.recs, id)
			if raw, ok := raws[id]; ok {
				cache.put(id, raw)
			}
		}
	}
}

// overlay replaces the records in recs that have a newer note.
func (n *notes) overlay(recs []Record) []Record {
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.recs) == 0 {
		return recs
	}
	for i, r := range recs {
		if e, ok := n.recs[r.ContainerID]; ok {
			recs[i] = e.rec.clone()
		}
	}
	return recs
}

// errNoteUnstored: Note is for a record already stored under the same
// service; anything else is a Put.
var errNoteUnstored = errors.New("no stored record of that service to note over")

// Note stores r in memory, as Put would on disk: Get, List and ListService
// return it from now on, and it reaches the file with the next Flush (or
// Close). A Put or Delete of the same container supersedes it. r must
// replace a record stored under the same service, so the index on disk
// stays true; Note changes nothing about r's identity or bundle, and its
// callers note only what a crash may lose: a probe's time.
func (s *Store) Note(r Record) error {
	if r.ContainerID == "" {
		return errors.New("noting record: empty container id")
	}
	var indexed bool
	err := s.db.View(func(tx *bolt.Tx) error {
		indexed = tx.Bucket(bucketServices).Get(serviceKey(r.Service, r.ContainerID)) != nil
		return nil
	})
	if err != nil {
		return fmt.Errorf("noting record %s: %w", r.ContainerID, err)
	}
	if !indexed {
		return fmt.Errorf("noting record %s of service %q: %w", r.ContainerID, r.Service, errNoteUnstored)
	}
	r.enforceCaps()
	r.UpdatedAt = s.now()
	s.notes.put(r)
	return nil
}

// Flush writes every note to the file in one transaction. A note of a
// record deleted meanwhile is not written: Delete drops notes inside its
// own transaction, which a flush's cannot interleave with.
func (s *Store) Flush() error {
	if s.notes.empty() {
		return nil
	}
	var snap map[string]noted
	raws := map[string][]byte{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		snap = s.notes.snapshot()
		recs := tx.Bucket(bucketContainers)
		for id, e := range snap {
			if recs.Get([]byte(id)) == nil {
				continue
			}
			raw, err := marshalRecord(e.rec)
			if err != nil {
				return err
			}
			if err := recs.Put([]byte(id), raw); err != nil {
				return err
			}
			raws[id] = raw
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("flushing %d noted records: %w", len(snap), err)
	}
	s.notes.flushed(snap, raws, &s.cache)
	return nil
}

// FlushEvery flushes the notes every d until ctx ends. A flush that fails
// is logged at WARN; its notes stay for the next one, and Close tries
// once more.
func (s *Store) FlushEvery(ctx context.Context, d time.Duration) error {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := s.Flush(); err != nil {
				s.log.Warn("writing noted records to the state file", logKeyPath, s.path, logKeyError, err)
			}
		}
	}
}
