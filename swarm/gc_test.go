package swarm

import (
	"slices"
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

func TestRemovable(t *testing.T) {
	t.Parallel()
	refs := func(gs ...Generation) map[string]bool {
		m := map[string]bool{}
		for _, g := range gs {
			for _, id := range g.SecretIDs() {
				m[id] = true
			}
		}
		return m
	}
	tests := map[string]struct {
		gens []Generation
		refs map[string]bool
		gone bool
		want []int // generations removed
	}{
		"should keep the mounted generation":                       {gens: []Generation{gen(1)}, refs: refs(gen(1))},
		"should remove an old generation once nothing mounts it":   {gens: []Generation{gen(1), gen(2)}, refs: refs(gen(2)), want: []int{1}},
		"should keep an old generation a rollout may roll back to": {gens: []Generation{gen(1), gen(2)}, refs: refs(gen(1), gen(2))},
		"should keep the newest generation before it is mounted":   {gens: []Generation{gen(1), gen(2)}, refs: refs(gen(1))},
		"should remove everything of an identity that is gone":     {gens: []Generation{gen(1), gen(2)}, gone: true, want: []int{1, 2}},
		"should keep a generation still mounted after the service went": {
			gens: []Generation{gen(1), gen(2)}, refs: refs(gen(2)), gone: true, want: []int{1}},
		"should remove an incomplete generation left by a crash": {
			gens: []Generation{gen(1), gen(2, withoutManifest()), gen(3)}, refs: refs(gen(3)), want: []int{1, 2}},
		"should leave a young incomplete generation (one being created)": {
			gens: []Generation{gen(1), gen(2, withoutFile("ca.crt"), madeAt(t0.Add(-time.Second)))}, refs: refs(gen(1))},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got []int
			for _, g := range Removable(GCInputs{Gens: tc.gens, Referenced: tc.refs, Gone: tc.gone, Now: t0}) {
				got = append(got, g.N)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got generations %v removed, want %v", got, tc.want)
			}
		})
	}
}

func TestReferencedBy(t *testing.T) {
	t.Parallel()
	ref := func(id string) []dockerwatch.SecretRef { return []dockerwatch.SecretRef{{SecretID: id}} }
	running := dockerwatch.Task{State: "running", DesiredState: "shutdown", Secrets: ref("old-task")}
	gone := dockerwatch.Task{State: "shutdown", DesiredState: "shutdown", Secrets: ref("dead-task")}
	tests := map[string]struct {
		svc  dockerwatch.Service
		want []string // referenced IDs
	}{
		"should count the spec and tasks still running": {
			svc:  dockerwatch.Service{Secrets: ref("spec"), PreviousSecrets: ref("prev"), UpdateState: "completed"},
			want: []string{"old-task", "spec"}},
		"should count the previous spec while an update may still roll back": {
			svc:  dockerwatch.Service{Secrets: ref("spec"), PreviousSecrets: ref("prev"), UpdateState: "updating"},
			want: []string{"old-task", "prev", "spec"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var got []string
			for id := range ReferencedBy(tc.svc, []dockerwatch.Task{running, gone}) {
				got = append(got, id)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}
