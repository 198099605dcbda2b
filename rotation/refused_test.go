package rotation

import (
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

func TestRotatorDoesNotWaitForAClaimantRefusedAnIdentity(t *testing.T) {
	t.Parallel()
	s := newStack(t, withServices("web"))
	// A second claimant of web's identity: recorded to be reported, running,
	// never given a bundle, so it can never show the new CA.
	s.docker.mu.Lock()
	s.docker.cts["intruder-1"] = dockerwatch.Container{ID: "intruder-1", Name: "intruder-1", State: dockerwatch.StateRunning, StartedAt: t0}
	s.docker.mu.Unlock()
	s.store.recs["intruder-1"] = state.Record{ContainerID: "intruder-1", ContainerName: "intruder-1", Service: "web",
		Identity: state.IdentityRecord{Refused: true}}
	if err := WriteRequest(s.dir, s.now); err != nil {
		t.Fatal(err)
	}
	s.step()
	s.writeCA("web")
	s.advance(time.Second)
	s.restart("web-1")
	s.advance(time.Second)
	s.probe("web-1", "mtls")
	s.step()
	if got := s.meta().Phase; got != PhaseReissue {
		t.Errorf("got phase %s, want reissue: a refused claimant holds no bundle to wait for:\n%s", got, s.logs.dump())
	}
}
