package main

import (
	"net/http"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/rotation"
	"github.com/crank-platform/crank-mtls-controller/status"
)

// reconciler is the container reconciler, with the level policy of cfg.
func (p *parts) reconciler() *reconcile.ContainerReconciler {
	cfg := p.cfg
	return &reconcile.ContainerReconciler{
		Containers: p.docker, Known: p.docker.KnownGetter(),
		Volume: p.volume, Authority: p.authority, Records: p.store, Identities: p.store,
		Reserved: map[string]string{
			controllerIdentity:      "the controller (its prober and status listener)",
			status.OperatorIdentity: "the operator's client bundle",
		},
		TrustImageLabels: cfg.TrustImageLabels,
		Interventions:    p.docker.Interventions,
		Arrivals:         p.docker.Interventions,
		Scope:            p.scope,
		TrustDomain:      cfg.TrustDomain,
		Issue:            p.issue,
		RenewFraction:    cfg.RenewFraction,
		Log:              p.log,
		Metrics:          p.metrics,
		Prober:           p.prober,
		Actions:          p.docker,
		Levels: reconcile.Policy{
			Environment:       cfg.Environment,
			Mode:              cfg.Mode,
			ProductionMinimum: cfg.ProductionMinimum,
			RestartBudget:     cfg.RestartBudget,
			BackoffBase:       cfg.RestartBackoff,
			BackoffMax:        10 * time.Minute,
			StartGrace:        cfg.StartGrace,
			ReloadGrace:       cfg.ReloadGrace,
			Quarantine:        cfg.Quarantine,
		},
		Limiter:        &reconcile.Spacing{Interval: cfg.ActionInterval},
		ProbeInterval:  cfg.ProbeInterval,
		SharedNetworks: p.networks,
		ExpiryWarn:     cfg.ExpiryWarn,
	}
}

// rotator is the CA rollover. It also owns the prober's client
// certificate: issued before any probe, renewed, and the successor's
// during an overlap.
func (p *parts) rotator() *rotation.Rotator {
	cfg := p.cfg
	return &rotation.Rotator{
		Authority:      p.authority,
		Store:          p.store,
		Volume:         p.volume,
		Containers:     p.docker,
		Prober:         p.prober,
		ProberIdentity: certs.Identity{Service: controllerIdentity, DNSNames: []string{controllerIdentity}},
		Issue:          p.issue,
		Enqueue:        p.queue.Add,
		StateDir:       cfg.StateDir,
		Fraction:       cfg.CARotateFraction,
		Timeout:        cfg.CARotateTimeout,
		Interval:       cfg.CARotateInterval,
		ExpiryWarn:     cfg.ExpiryWarn,
		Log:            p.log,
	}
}

// statusHandler serves the status API and dashboard from the records.
func (p *parts) statusHandler(rot *rotation.Rotator) http.Handler {
	return status.NewHandler(status.Funcs{
		RecordsFunc: p.store.List,
		SummaryFunc: func() status.Summary {
			ca := p.authority.Active().Cert
			return status.Summary{Mode: p.cfg.Mode, Environment: p.cfg.Environment, Project: p.scope.Project,
				Version: version(), CANotAfter: ca.NotAfter, CASubject: ca.Subject.String(), CARollover: rolloverSummary(rot.Status()),
				ProductionMinimum: p.cfg.ProductionMinimum}
		},
	})
}
