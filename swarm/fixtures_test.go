package swarm

import (
	"strconv"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// t0 is the fixtures' "now".
var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const (
	caOld = "0000000000000000000000000000000000000000000000000000000000000001"
	caNew = "0000000000000000000000000000000000000000000000000000000000000002"
)

// genOpt edits a fixture generation.
type genOpt func(*Generation)

// gen returns a complete generation n of web: issued by caOld, trusting
// caOld, for the names web and localhost, due at t0+1h, expiring at t0+2h.
// Its secrets' IDs are "s<n>-<file>".
func gen(n int, opts ...genOpt) Generation {
	g := Generation{N: n, Identity: "web", Secrets: map[string]dockerwatch.Secret{}}
	for _, f := range bundleFiles {
		g.Secrets[f] = dockerwatch.Secret{ID: secretID(n, f), Name: SecretName("web", f, n), CreatedAt: t0.Add(-time.Hour)}
	}
	g.Manifest = &Manifest{ConfigID: "m" + strconv.Itoa(n), CreatedAt: t0.Add(-time.Hour), ServerFingerprint: "fp" + strconv.Itoa(n),
		Issuer: caOld, Trust: []string{caOld}, NotAfter: t0.Add(2 * time.Hour), RenewAt: t0.Add(time.Hour),
		DNSNames: []string{"localhost", "web"}, Owner: "swarm:demo_web"}
	for _, o := range opts {
		o(&g)
	}
	return g
}

func secretID(n int, file string) string { return "s" + strconv.Itoa(n) + "-" + file }

func withoutManifest() genOpt { return func(g *Generation) { g.Manifest = nil } }

func withoutFile(f string) genOpt { return func(g *Generation) { delete(g.Secrets, f) } }

func madeAt(t time.Time) genOpt {
	return func(g *Generation) {
		for f, s := range g.Secrets {
			s.CreatedAt = t
			g.Secrets[f] = s
		}
		if g.Manifest != nil {
			g.Manifest.CreatedAt = t
		}
	}
}

func manifest(fn func(m *Manifest)) genOpt { return func(g *Generation) { fn(g.Manifest) } }

// svcOpt edits a fixture service.
type svcOpt func(*dockerwatch.Service)

// service returns demo_web of stack demo, 2 replicas, version 7, with no
// secrets.
func service(opts ...svcOpt) dockerwatch.Service {
	s := dockerwatch.Service{ID: "svc-web", Name: "demo_web", Stack: "demo", Version: 7, Replicas: 2,
		Labels: map[string]string{dockerwatch.LabelStackNamespace: "demo"}}
	for _, o := range opts {
		o(&s)
	}
	return s
}

func withLabel(k, v string) svcOpt { return func(s *dockerwatch.Service) { s.Labels[k] = v } }

func mounting(refs ...dockerwatch.SecretRef) svcOpt {
	return func(s *dockerwatch.Service) { s.Secrets = refs }
}

func updateState(st string) svcOpt { return func(s *dockerwatch.Service) { s.UpdateState = st } }

// refsOf are the references that mount g at /certs/web as root.
func refsOf(g Generation) []dockerwatch.SecretRef {
	return DesiredSecrets(nil, g, nil, Mount{Root: "/certs", Identity: "web", Owner: certs.Owner{UID: -1, GID: -1}})
}
