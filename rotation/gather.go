package rotation

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// gather builds the Members of a phase: every recorded (so managed)
// container that still exists, with Docker's view of its process, its
// service's bundle as it is on disk, and its last probe. Records say
// nothing about whether a container runs, so Docker is asked; the bundle
// is read rather than trusted from the record, because the files win.
func (r *Rotator) gather(ctx context.Context, phase Phase) ([]Member, error) {
	recs, err := r.Store.List()
	if err != nil {
		return nil, fmt.Errorf("CA rollover: listing records: %w", err)
	}
	// Peers trust anchors: the new CA's root for an imported intermediate,
	// the CA itself for one the controller created.
	newAnchor := r.Authority.Active().Anchor()
	if phase == PhaseOverlap {
		if next := r.Authority.Successor(); next != nil {
			newAnchor = next.Anchor()
		}
	}
	active := r.Authority.Active().Cert
	key := PhaseKey(caFacts(r.Authority))
	bundles := map[string]BundleFacts{}
	var out []Member
	for _, rec := range recs {
		if rec.Identity.Refused {
			continue // holds no identity, so no bundle to roll over
		}
		c, err := r.Containers.Inspect(ctx, rec.ContainerID)
		if errors.Is(err, dockerwatch.ErrNotFound) {
			continue // gone: nothing to wait for
		}
		if err != nil {
			return nil, fmt.Errorf("CA rollover: %w", err)
		}
		b, ok := bundles[rec.Service]
		if !ok {
			if b, err = r.bundleFacts(rec.Service, newAnchor, active); err != nil {
				return nil, err
			}
			bundles[rec.Service] = b
		}
		out = append(out, Member{
			Service: rec.Service, Container: rec.ContainerName,
			Running: c.State == dockerwatch.StateRunning, State: c.State, StartedAt: c.StartedAt, ReloadedAt: rec.Remediation.ReloadedAt,
			Bundle: b, Probe: probeFacts(rec), Degraded: rec.Remediation.Degraded,
			PhaseReloaded: key != "" && rec.Remediation.PhaseReload == key,
		})
	}
	return out, nil
}

// bundleFacts reads service's bundle. A missing or unreadable bundle is
// reported as not found (the reconciler is about to write it); an unsafe
// volume layout is an error for a human.
func (r *Rotator) bundleFacts(service string, newAnchor, active *x509.Certificate) (BundleFacts, error) {
	b, err := r.Volume.ReadBundle(service)
	if errors.Is(err, fs.ErrNotExist) {
		return BundleFacts{}, nil
	}
	if err != nil {
		return BundleFacts{}, fmt.Errorf("CA rollover: reading the bundle of %s: %w", service, err)
	}
	return bundleFactsOf(b, newAnchor, active), nil
}

// bundleFactsOf is the pure half of bundleFacts. newAnchor is what ca.crt
// must hold for peers to trust the new CA; active signs the leaves.
func bundleFactsOf(b *certs.BundleFiles, newAnchor, active *x509.Certificate) BundleFacts {
	f := BundleFacts{WrittenAt: b.WrittenAt}
	cas, err := certs.ParseCertificatesPEM(b.CA)
	if err != nil {
		return f
	}
	leaves, err := certs.ParseCertificatesPEM(b.ServerCert)
	if err != nil {
		return f
	}
	f.Found = true
	for _, c := range cas {
		if c.Equal(newAnchor) {
			f.TrustsSuccessor = true
		}
	}
	f.ServerFingerprint = fingerprint(leaves[0])
	f.ServerFromActive = leaves[0].CheckSignatureFrom(active) == nil
	// The client cert matters as much: a worker presenting an old-CA
	// client.crt is refused by every server once the old CA is retired.
	if clients, err := certs.ParseCertificatesPEM(b.ClientCert); err == nil {
		f.ClientFromActive = clients[0].CheckSignatureFrom(active) == nil
	}
	return f
}

func probeFacts(rec state.Record) ProbeFacts {
	lv := rec.Level
	return ProbeFacts{At: lv.LastProbeAt, Observed: rec.ObservedLevel, Desired: lv.Desired,
		Findings: lv.ProbeFindings, ServedFingerprint: lv.ServedFingerprint}
}
