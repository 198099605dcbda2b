package swarm

import (
	"testing"
	"time"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

func bundleSecret(identity, file, n, id string) dockerwatch.Secret {
	return dockerwatch.Secret{ID: id, Labels: map[string]string{LabelManaged: ManagedBundle, LabelIdentity: identity, LabelFile: file, LabelGeneration: n}}
}

func TestGenerations(t *testing.T) {
	t.Parallel()
	var secrets []dockerwatch.Secret
	for _, f := range bundleFiles {
		secrets = append(secrets, bundleSecret("web", f, "1", "a-"+f), bundleSecret("web", f, "2", "b-"+f))
	}
	secrets = append(secrets,
		bundleSecret("api", "tls.crt", "1", "other-identity"),
		bundleSecret("web", "tls.crt", "x", "bad-generation"),
		bundleSecret("web", "id_rsa", "1", "not-a-bundle-file"))
	configs := []dockerwatch.SwarmConfig{{ID: "m1", Labels: map[string]string{LabelManaged: ManagedBundle, LabelIdentity: "web", LabelGeneration: "1",
		LabelIssuer: caOld, LabelTrust: caNew + "," + caOld, LabelRenewAt: "2026-12-01T13:00:00Z"}, Data: []byte(`{"tls.crt":"Y2VydA=="}`)}}

	gens := Generations("web", secrets, configs)
	if len(gens) != 2 || gens[0].N != 1 || gens[1].N != 2 {
		t.Fatalf("got %d generations %+v, want 1 and 2", len(gens), gens)
	}
	if !gens[0].Complete() || gens[1].Complete() {
		t.Errorf("got complete %v/%v, want generation 1 complete and 2 without its manifest", gens[0].Complete(), gens[1].Complete())
	}
	m := gens[0].Manifest
	if m.Issuer != caOld || len(m.Trust) != 2 || m.Trust[0] != caOld || !m.RenewAt.Equal(t0.Add(time.Hour)) || string(m.PEM.ServerCert) != "cert" {
		t.Errorf("got manifest %+v, want its labels and data read", m)
	}
	if l := Latest(gens); l == nil || l.N != 1 {
		t.Errorf("got latest %+v, want generation 1 (2 is incomplete)", l)
	}
	if n := NextN(gens); n != 3 {
		t.Errorf("got next %d, want 3 (past every generation seen)", n)
	}
}

func TestMountedGeneration(t *testing.T) {
	t.Parallel()
	gens := []Generation{gen(1), gen(2)}
	tests := map[string]struct {
		refs []dockerwatch.SecretRef
		want int // the generation mounted; 0 for none
	}{
		"should find the generation by secret ID": {refs: refsOf(gen(2)), want: 2},
		"should say none for no bundle":           {refs: []dockerwatch.SecretRef{{SecretID: "db"}}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := MountedGeneration(tc.refs, gens); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}
