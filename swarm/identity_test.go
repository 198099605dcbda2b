package swarm

import (
	"errors"
	"slices"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

func TestIdentityName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		svc     dockerwatch.Service
		want    string // the identity
		wantErr bool   // not a DNS label
	}{
		"should use the name within the stack":      {svc: service(), want: "web"},
		"should prefer crank.security.service":      {svc: service(withLabel(reconcile.LabelService, "api")), want: "api"},
		"should use the whole name outside stacks":  {svc: dockerwatch.Service{Name: "legacy"}, want: "legacy"},
		"should refuse a name that is no DNS label": {svc: dockerwatch.Service{Name: "Legacy_App"}, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := IdentityName(tc.svc)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Errorf("got %q, %v; want %q (error %v)", got, err, tc.want, tc.wantErr)
			}
			if err != nil && !errors.Is(err, certs.ErrInvalidServiceName) {
				t.Errorf("got error %v, want one wrapping certs.ErrInvalidServiceName", err)
			}
		})
	}
}

func TestScopeManaged(t *testing.T) {
	t.Parallel()
	scope := Scope{Stack: "demo", SelfServiceID: "svc-ctrl"}
	tests := map[string]struct {
		svc  dockerwatch.Service
		want reconcile.ScopeReason
	}{
		"should manage the controller's stack":        {svc: service(), want: reconcile.ScopeInProject},
		"should never manage the controller itself":   {svc: service(func(s *dockerwatch.Service) { s.ID = "svc-ctrl" }), want: reconcile.ScopeSelf},
		"should manage an opted-in service elsewhere": {svc: dockerwatch.Service{Name: "x", Labels: map[string]string{reconcile.LabelEnable: "true"}}, want: reconcile.ScopeOptedIn},
		"should leave another stack alone":            {svc: dockerwatch.Service{Name: "x", Stack: "other"}, want: reconcile.ScopeOutside},
		"should honour an opt-out in the stack":       {svc: service(withLabel(reconcile.LabelEnable, "false")), want: reconcile.ScopeOptedOut},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got, why := scope.Managed(tc.svc); got != tc.want {
				t.Errorf("got %s (%s), want %s", got, why, tc.want)
			}
		})
	}
}

func TestJudgeClaim(t *testing.T) {
	t.Parallel()
	web := Claimant(service())
	other := state.IdentityOwner{Key: "swarm:demo_impostor"}
	tests := map[string]struct {
		owner    state.IdentityOwner
		reserved string
		wantOK   bool
	}{
		"should grant an unowned identity":          {wantOK: true},
		"should grant the owner its identity again": {owner: web, wantOK: true},
		"should refuse a second claimant":           {owner: other},
		"should refuse a reserved name":             {reserved: "the controller"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, ok := JudgeClaim("web", web, tc.owner, tc.reserved)
			if ok != tc.wantOK || (!ok && f.Reason != reconcile.IdentityConflict) {
				t.Errorf("got %v %+v, want ok=%v (identity-conflict otherwise)", ok, f, tc.wantOK)
			}
		})
	}
}

func TestWantedIdentityDropsAnotherIdentitysName(t *testing.T) {
	t.Parallel()
	svc := service(func(s *dockerwatch.Service) {
		s.Networks = []dockerwatch.ServiceNetwork{{ID: "n1", Aliases: []string{"web", "platform"}}}
	})
	taken := func(n string) (string, bool) { return "swarm service demo_platform", n == "platform" }
	id, findings := WantedIdentity(svc, "web", "crank.local", taken)
	if !slices.Equal(id.DNSNames, []string{"web", "localhost"}) {
		t.Errorf("got names %v, want web and localhost", id.DNSNames)
	}
	if len(findings) != 1 || findings[0].Reason != reconcile.AliasConflict {
		t.Errorf("got findings %+v, want one alias-conflict", findings)
	}
}
