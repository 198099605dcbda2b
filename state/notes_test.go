package state

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// probed is r as a probe leaves it: only the probe's time and duration differ.
func probed(r Record, at time.Time) Record {
	r.Level.LastProbeAt, r.Level.ProbeDuration = at, 3*time.Millisecond
	return r
}

func TestNoteIsReadAtOnceAndReachesTheFileOnFlush(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openToClose(t, dir)
	rec := newRecord("a")
	mustPut(t, s, rec)
	if _, err := s.List(); err != nil { // fills the cache
		t.Fatal(err)
	}
	at := fixedNow.Add(time.Minute)
	if err := s.Note(probed(rec, at)); err != nil {
		t.Fatalf("Note: %v", err)
	}
	get, _, _ := s.Get("a")
	list, _ := s.List()
	svc, _ := s.ListService("app")
	for what, got := range map[string]time.Time{"Get": get.Level.LastProbeAt, "List": list[0].Level.LastProbeAt, "ListService": svc[0].Level.LastProbeAt} {
		if !got.Equal(at) {
			t.Errorf("%s after Note: LastProbeAt %v, want %v", what, got, at)
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	list, _ = s.List()
	if !list[0].Level.LastProbeAt.Equal(at) {
		t.Errorf("List after Flush: LastProbeAt %v, want %v", list[0].Level.LastProbeAt, at)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := reopen(t, dir)
	got, ok, err := again.Get("a")
	if err != nil || !ok || !got.Level.LastProbeAt.Equal(at) {
		t.Errorf("after Flush and reopen: got %v %v %v, want LastProbeAt %v", got.Level.LastProbeAt, ok, err, at)
	}
}

func TestCloseFlushesNotes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openToClose(t, dir)
	rec := newRecord("a")
	mustPut(t, s, rec)
	at := fixedNow.Add(time.Hour)
	if err := s.Note(probed(rec, at)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got, _, _ := reopen(t, dir).Get("a")
	if !got.Level.LastProbeAt.Equal(at) {
		t.Errorf("after Close and reopen: LastProbeAt %v, want %v", got.Level.LastProbeAt, at)
	}
}

func TestNoteWithoutTheSameStoredServiceIsRefused(t *testing.T) {
	t.Parallel()
	s, _ := mustOpen(t, t.TempDir())
	if err := s.Note(newRecord("never-put")); !errors.Is(err, errNoteUnstored) {
		t.Errorf("Note of an unstored record: got %v, want errNoteUnstored", err)
	}
	mustPut(t, s, newRecord("a"))
	moved := newRecord("a")
	moved.Service = "other"
	if err := s.Note(moved); !errors.Is(err, errNoteUnstored) {
		t.Errorf("Note that changes the service: got %v, want errNoteUnstored", err)
	}
	if err := s.Note(Record{}); err == nil {
		t.Error("Note with no container ID: got nil error")
	}
}

func TestPutAndDeleteSupersedeANote(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openToClose(t, dir)
	a, b := newRecord("a"), newRecord("b")
	mustPut(t, s, a)
	mustPut(t, s, b)
	noteAt := fixedNow.Add(time.Minute)
	for _, r := range []Record{a, b} {
		if err := s.Note(probed(r, noteAt)); err != nil {
			t.Fatal(err)
		}
	}
	a.ObservedLevel = "tls"
	mustPut(t, s, a) // the durable write wins over the note
	if err := s.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil { // must not bring b back
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	again := reopen(t, dir)
	got, _, _ := again.Get("a")
	if got.ObservedLevel != "tls" || !got.Level.LastProbeAt.IsZero() {
		t.Errorf("a: got level %q probed %v, want the Put's (tls, never probed)", got.ObservedLevel, got.Level.LastProbeAt)
	}
	if _, ok, _ := again.Get("b"); ok {
		t.Error("b: a flush after Delete brought the record back")
	}
	if ids, _ := again.ListService("app"); len(ids) != 1 {
		t.Errorf("ListService after reopen: got %d records, want 1", len(ids))
	}
}

// Notes, flushes, Puts and Deletes of the same records from many
// goroutines: every record ends as its last write left it, and the race
// detector sees the locking.
func TestNotesUnderConcurrentWrites(t *testing.T) {
	t.Parallel()
	s, _ := mustOpen(t, t.TempDir())
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		mustPut(t, s, newRecord(id))
	}
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Go(func() {
			r := newRecord(id)
			for i := range 50 {
				if err := s.Note(probed(r, fixedNow.Add(time.Duration(i)*time.Second))); err != nil {
					t.Errorf("Note %s: %v", id, err)
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if err := s.Flush(); err != nil {
				t.Errorf("Flush: %v", err)
				return
			}
		}
	})
	wg.Wait()
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	want := fixedNow.Add(49 * time.Second)
	list, _ := s.List()
	for _, r := range list {
		if !r.Level.LastProbeAt.Equal(want) {
			t.Errorf("%s: LastProbeAt %v, want the last note's %v", r.ContainerID, r.Level.LastProbeAt, want)
		}
	}
}

// reopen opens the store in dir again, as after a restart.
func reopen(t *testing.T, dir string) *Store {
	t.Helper()
	s, _ := mustOpen(t, dir)
	return s
}

func TestFlushEveryWritesNotesUntilItsContextEnds(t *testing.T) {
	t.Parallel()
	s, _ := mustOpen(t, t.TempDir())
	rec := newRecord("a")
	mustPut(t, s, rec)
	if err := s.Note(probed(rec, fixedNow.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.FlushEvery(ctx, time.Millisecond) }()
	deadline := time.Now().Add(10 * time.Second)
	for !s.notes.empty() {
		if time.Now().After(deadline) {
			t.Fatal("the note was not flushed within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("FlushEvery: got %v, want nil once its context ended", err)
	}
}

// openToClose opens a store in dir that the test itself closes, to reopen.
func openToClose(t *testing.T, dir string) *Store {
	t.Helper()
	o, _ := testOptions()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}
