package swarm

import (
	"strings"
	"testing"
)

func TestSecretName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", 63)
	tests := map[string]struct {
		identity, file string
		gen            int
		want           string // the exact name, or "" to check only the limit
	}{
		"should name a short identity plainly":     {identity: "web", file: "tls.key", gen: 3, want: "crank-web-tls.key-3"},
		"should keep the file and generation":      {identity: "email-parser", file: "client.crt", gen: 12, want: "crank-email-parser-client.crt-12"},
		"should cut a 63-character identity to 64": {identity: long, file: "client.key", gen: 100000},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := SecretName(tc.identity, tc.file, tc.gen)
			if tc.want != "" && got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if len(got) > maxObjectName {
				t.Errorf("got %q (%d characters), want at most %d", got, len(got), maxObjectName)
			}
		})
	}
}

func TestSecretNameKeepsLongIdentitiesApart(t *testing.T) {
	t.Parallel()
	a := SecretName(strings.Repeat("a", 62)+"b", "client.key", 1)
	b := SecretName(strings.Repeat("a", 62)+"c", "client.key", 1)
	if a == b {
		t.Errorf("two identities got the same name %q", a)
	}
	if !strings.HasSuffix(a, "-client.key-1") {
		t.Errorf("got %q, want the file and generation kept at the end", a)
	}
}

func TestTarget(t *testing.T) {
	t.Parallel()
	if got, want := Target("/certs", "web", "tls.crt"), "/certs/web/tls.crt"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
