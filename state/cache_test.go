package state

import (
	"testing"
)

func TestListFollowsWritesAfterItIsCached(t *testing.T) {
	t.Parallel()
	s, _ := mustOpen(t, t.TempDir())
	mustPut(t, s, Record{ContainerID: "a", Service: "api", History: []Event{{Action: "issue"}}})
	first, err := s.List() // fills the cache
	if err != nil || len(first) != 1 {
		t.Fatalf("List: got %v, %v", first, err)
	}
	first[0].History[0].Action = "changed by a caller"
	mustPut(t, s, Record{ContainerID: "b", Service: "web"})
	if err := s.Delete("a"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, Record{ContainerID: "c", Service: "web", Findings: []string{"renew-due"}})
	got, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ContainerID != "b" || got[1].ContainerID != "c" || got[1].Findings[0] != "renew-due" {
		t.Fatalf("List after writes: got %+v, want b and c as written", got)
	}
	mustPut(t, s, Record{ContainerID: "a", Service: "api", History: []Event{{Action: "issue"}}})
	again, _ := s.List()
	if again[0].ContainerID != "a" || again[0].History[0].Action != "issue" {
		t.Errorf("a record a caller changed after List: got %+v, want the stored one", again[0])
	}
}
