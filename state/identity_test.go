package state

import (
	"sync"
	"testing"
)

func TestIdentityClaims(t *testing.T) {
	t.Parallel()
	platform := IdentityOwner{Key: "compose:crank/platform", Project: "crank", Service: "platform", Container: "crank_platform_1"}
	intruder := IdentityOwner{Key: "compose:crank/intruder", Project: "crank", Service: "intruder", Container: "crank_intruder_1"}
	tests := map[string]func(t *testing.T, s *Store){
		"should give an unowned identity to its first claimant, stamped with the store's clock": func(t *testing.T, s *Store) {
			got := mustClaim(t, s, "platform", platform)
			want := platform
			want.ClaimedAt = fixedNow
			if got != want {
				t.Fatalf("ClaimIdentity: got %+v, want %+v", got, want)
			}
		},
		"should keep the first owner when a second owner claims the same identity": func(t *testing.T, s *Store) {
			mustClaim(t, s, "platform", platform)
			if got := mustClaim(t, s, "platform", intruder); got.Key != platform.Key {
				t.Fatalf("second claim: got owner %q, want %q", got.Key, platform.Key)
			}
		},
		"should let the owner claim again without changing the claim time": func(t *testing.T, s *Store) {
			first := mustClaim(t, s, "platform", platform)
			again := platform
			again.Container = "crank_platform_2"
			if got := mustClaim(t, s, "platform", again); got != first {
				t.Fatalf("re-claim by the owner: got %+v, want %+v", got, first)
			}
		},
		"should hand a released identity to the next claimant": func(t *testing.T, s *Store) {
			mustClaim(t, s, "platform", platform)
			if err := s.ReleaseIdentity("platform"); err != nil {
				t.Fatalf("ReleaseIdentity: %v", err)
			}
			if got := mustClaim(t, s, "platform", intruder); got.Key != intruder.Key {
				t.Fatalf("claim after release: got owner %q, want %q", got.Key, intruder.Key)
			}
		},
		"should list every owned identity and report an unowned one as absent": func(t *testing.T, s *Store) {
			mustClaim(t, s, "platform", platform)
			mustClaim(t, s, "intruder", intruder)
			all, err := s.Identities()
			if err != nil || len(all) != 2 || all["intruder"].Key != intruder.Key {
				t.Fatalf("Identities: got %v, %v; want platform and intruder", all, err)
			}
			if _, found, err := s.IdentityOwnerOf("nobody"); found || err != nil {
				t.Fatalf("IdentityOwnerOf(nobody): got found=%v err=%v, want false, nil", found, err)
			}
		},
		"should refuse an empty name or owner": func(t *testing.T, s *Store) {
			if _, err := s.ClaimIdentity("", platform); err == nil {
				t.Fatal("ClaimIdentity with an empty name: got nil error")
			}
			if _, err := s.ClaimIdentity("platform", IdentityOwner{}); err == nil {
				t.Fatal("ClaimIdentity with an empty owner: got nil error")
			}
		},
		"should let exactly one of many concurrent first claims win": func(t *testing.T, s *Store) {
			var wg sync.WaitGroup
			winners := make(chan string, 8)
			for i := range 8 {
				o := IdentityOwner{Key: "container:c" + string(rune('a'+i))}
				wg.Go(func() { winners <- mustClaim(t, s, "shared", o).Key })
			}
			wg.Wait()
			close(winners)
			seen := map[string]bool{}
			for k := range winners {
				seen[k] = true
			}
			if len(seen) != 1 {
				t.Fatalf("concurrent claims: got %d distinct owners %v, want 1", len(seen), seen)
			}
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, _ := mustOpen(t, t.TempDir())
			tc(t, s)
		})
	}
}

func TestIdentityOwnerSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, _ := mustOpen(t, dir)
	mustClaim(t, s, "platform", IdentityOwner{Key: "compose:crank/platform"})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s, _ = mustOpen(t, dir)
	o, found, err := s.IdentityOwnerOf("platform")
	if err != nil || !found || o.Key != "compose:crank/platform" {
		t.Fatalf("after reopen: got %+v found=%v err=%v, want owner compose:crank/platform", o, found, err)
	}
}

func mustClaim(t *testing.T, s *Store, name string, o IdentityOwner) IdentityOwner {
	t.Helper()
	got, err := s.ClaimIdentity(name, o)
	if err != nil {
		t.Errorf("ClaimIdentity(%s): %v", name, err)
	}
	return got
}
