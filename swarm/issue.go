package swarm

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// ensureBundle issues a new generation when DecideBundle asks for one.
// Issuance happens in observe mode too: secrets nobody mounts change
// nothing, and the bundle is ready when the mode turns to enforce.
func (r *Reconciler) ensureBundle(ctx context.Context, p *pass) error {
	active := probe.Fingerprint(r.Authority.Active().Cert)
	trust, err := fingerprints(r.Authority.TrustBundle())
	if err != nil {
		return fmt.Errorf("reading the trust bundle: %w", err)
	}
	issue, reason, msg := DecideBundle(BundleInputs{Latest: p.latest, Wanted: p.wanted, ActiveCA: active, Trust: trust,
		Owner: p.claimant.Key, Now: p.now})
	if !issue {
		return nil
	}
	g, err := r.createGeneration(ctx, p, reason, active, trust)
	if err != nil {
		return err
	}
	p.gens = append(p.gens, g)
	p.latest = &p.gens[len(p.gens)-1]
	m := g.Manifest
	p.log.Info(fmt.Sprintf("%s: issued bundle generation %d (%s: %s); it reaches the tasks by a rolling update",
		p.identity, g.N, reason, msg),
		keyGeneration, g.N, keyReason, string(reason), keyServerSer, m.ServerSerial, keyNotAfter, m.NotAfter, keyRenewAt, m.RenewAt)
	if r.Metrics != nil {
		r.Metrics.BundleIssued(string(reason))
	}
	return nil
}

// createGeneration issues a bundle and stores it as the next generation:
// the five secrets first, the manifest config last, so a crash in between
// leaves an incomplete generation that is never mounted and is removed
// later. The keys live only in this function's memory until the manager
// has them.
func (r *Reconciler) createGeneration(ctx context.Context, p *pass, reason certs.Reason, active string, trust []string) (Generation, error) {
	opts := r.Issue
	opts.Now = p.now
	b, info, err := r.Authority.IssueBundle(p.wanted, opts)
	if err != nil {
		return Generation{}, fmt.Errorf("issuing the bundle of %s: %w", p.identity, err)
	}
	defer func() { clear(b.ServerKey); clear(b.ClientKey) }()
	g := Generation{N: NextN(p.gens), Identity: p.identity, Secrets: map[string]dockerwatch.Secret{}}
	data := map[string][]byte{certs.FileServerCert: b.ServerCert, certs.FileServerKey: b.ServerKey,
		certs.FileClientCert: b.ClientCert, certs.FileClientKey: b.ClientKey, certs.FileCA: b.CA}
	base := map[string]string{LabelManaged: ManagedBundle, LabelIdentity: p.identity,
		LabelGeneration: strconv.Itoa(g.N), LabelOwner: p.claimant.Key}
	for _, f := range bundleFiles {
		labels := with(base, LabelFile, f)
		name := SecretName(p.identity, f, g.N)
		id, err := r.Engine.CreateSecret(ctx, name, data[f], labels)
		if err != nil {
			return Generation{}, fmt.Errorf("storing generation %d of %s: %w", g.N, p.identity, err)
		}
		g.Secrets[f] = dockerwatch.Secret{ID: id, Name: name, Labels: labels, CreatedAt: p.now}
	}
	m, err := r.manifest(b, info, reason, active, trust, p)
	if err != nil {
		return Generation{}, err
	}
	body, err := json.Marshal(m.PEM)
	if err != nil {
		return Generation{}, fmt.Errorf("encoding the manifest of %s: %w", p.identity, err)
	}
	if m.ConfigID, err = r.Engine.CreateConfig(ctx, ManifestName(p.identity, g.N), body, manifestLabels(base, m)); err != nil {
		return Generation{}, fmt.Errorf("storing generation %d of %s: %w", g.N, p.identity, err)
	}
	m.CreatedAt, g.Manifest = p.now, m
	return g, nil
}

// manifest builds the public facts of a freshly issued bundle.
func (r *Reconciler) manifest(b *certs.BundleFiles, info certs.IssueInfo, reason certs.Reason, active string, trust []string, p *pass) (*Manifest, error) {
	server, err := certs.ParseCertificatesPEM(b.ServerCert)
	if err != nil {
		return nil, fmt.Errorf("reading the certificate just issued for %s: %w", p.identity, err)
	}
	lifetime := info.NotAfter.Sub(info.NotBefore)
	renew := certs.RenewPoint(info.NotBefore, info.NotAfter, r.Renew).Add(r.jitter(lifetime))
	return &Manifest{
		ServerFingerprint: probe.Fingerprint(server[0]), Issuer: active, Trust: trust,
		NotAfter: info.NotAfter, RenewAt: renew, IssuedReason: string(reason),
		ServerSerial: info.ServerSerial, ClientSerial: info.ClientSerial, DNSNames: p.wanted.DNSNames, Owner: p.claimant.Key,
		PEM: ManifestPEM{ServerCert: b.ServerCert, ClientCert: b.ClientCert, CA: b.CA},
	}, nil
}

func manifestLabels(base map[string]string, m *Manifest) map[string]string {
	l := with(base, LabelServerFingerprint, m.ServerFingerprint)
	l[LabelIssuer], l[LabelTrust] = m.Issuer, joinList(m.Trust)
	l[LabelNotAfter], l[LabelRenewAt] = formatTime(m.NotAfter), formatTime(m.RenewAt)
	l[LabelIssuedReason], l[LabelServerSerial], l[LabelClientSerial] = m.IssuedReason, m.ServerSerial, m.ClientSerial
	l[LabelDNSNames] = joinList(m.DNSNames)
	return l
}

// with returns a copy of m with k set to v.
func with(m map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(m)+1)
	for mk, mv := range m {
		out[mk] = mv
	}
	out[k] = v
	return out
}

// jitter spreads the renewals of services issued together: up to 2% of the
// lifetime, at most an hour.
func (r *Reconciler) jitter(lifetime time.Duration) time.Duration {
	if r.Jitter != nil {
		return r.Jitter(lifetime)
	}
	limit := min(lifetime/50, time.Hour)
	if limit <= 0 {
		return 0
	}
	return rand.N(limit)
}
