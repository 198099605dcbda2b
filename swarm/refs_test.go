package swarm

import (
	"testing"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

func TestDesiredSecrets(t *testing.T) {
	t.Parallel()
	foreign := dockerwatch.SecretRef{SecretID: "db-pass", SecretName: "db-pass", Target: "db-pass", UID: "0", GID: "0", Mode: 0o400}
	planted := dockerwatch.SecretRef{SecretID: "someone-elses", Target: "/certs/web/tls.key"}
	g1, g2 := gen(1), gen(2)
	got := DesiredSecrets(append([]dockerwatch.SecretRef{foreign, planted}, refsOf(g1)...), g2, []Generation{g1, g2},
		Mount{Root: "/certs", Identity: "web", Owner: certs.Owner{UID: 1000, GID: 1000}})

	if len(got) != 6 || got[0] != foreign {
		t.Fatalf("got %+v, want the foreign reference first and kept, then the 5 bundle files", got)
	}
	want := map[string]dockerwatch.SecretRef{
		"/certs/web/tls.crt":    {SecretID: secretID(2, "tls.crt"), Mode: 0o444},
		"/certs/web/tls.key":    {SecretID: secretID(2, "tls.key"), Mode: 0o400},
		"/certs/web/client.crt": {SecretID: secretID(2, "client.crt"), Mode: 0o444},
		"/certs/web/client.key": {SecretID: secretID(2, "client.key"), Mode: 0o400},
		"/certs/web/ca.crt":     {SecretID: secretID(2, "ca.crt"), Mode: 0o444},
	}
	for _, r := range got[1:] {
		w, ok := want[r.Target]
		if !ok || r.SecretID != w.SecretID || r.Mode != w.Mode || r.UID != "1000" || r.GID != "1000" {
			t.Errorf("got %+v, want %+v owned by 1000:1000", r, w)
		}
	}
}

func TestDesiredSecretsGroupRead(t *testing.T) {
	t.Parallel()
	got := DesiredSecrets(nil, gen(1), nil, Mount{Root: "/etc/certs", Identity: "web", Owner: certs.Owner{UID: -1, GID: 33, GroupRead: true}})
	for _, r := range got {
		if r.Target == "/etc/certs/web/client.key" && (r.Mode != 0o440 || r.UID != "0" || r.GID != "33") {
			t.Errorf("got %+v, want 0440 root:33", r)
		}
	}
}

func TestSameSecrets(t *testing.T) {
	t.Parallel()
	a := refsOf(gen(1))
	b := append([]dockerwatch.SecretRef(nil), a...)
	b[0], b[4] = b[4], b[0]
	if !SameSecrets(a, b) {
		t.Errorf("got different for the same references in another order")
	}
	b[1].Mode = 0o444
	if SameSecrets(a, b) {
		t.Errorf("got same for references whose mode differs")
	}
	if SameSecrets(a, a[:4]) {
		t.Errorf("got same for a missing reference")
	}
}
