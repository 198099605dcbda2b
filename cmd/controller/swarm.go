package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/rotation"
	"github.com/crank-platform/crank-mtls-controller/state"
	"github.com/crank-platform/crank-mtls-controller/status"
	"github.com/crank-platform/crank-mtls-controller/swarm"
)

// Values of --orchestrator.
const (
	orchestratorCompose = "compose"
	orchestratorSwarm   = "swarm"
	orchestratorAuto    = "auto"
)

// Log keys of swarm mode.
const (
	keyStack    = "stack"
	keyRestored = "restored"
	keyState    = "swarm_state"
)

// useSwarm says whether to run in swarm mode. compose is the default: an
// engine that joins a swarm must not turn a compose deployment's
// controller into something else. auto picks swarm only when the engine
// is a swarm manager and the controller itself runs as a swarm task.
func useSwarm(ctx context.Context, cfg Config, log *slog.Logger) (bool, error) {
	switch cfg.Orchestrator {
	case orchestratorSwarm:
		return true, nil
	case orchestratorCompose:
		return false, nil
	}
	docker, err := dockerwatch.New(cfg.DockerHost)
	if err != nil {
		return false, fmt.Errorf("creating Docker client: %w", err)
	}
	defer docker.Close()
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	info, err := docker.SwarmInfo(ictx)
	if err != nil {
		return false, fmt.Errorf("--orchestrator auto: %w", err)
	}
	host, _ := os.Hostname()
	self, err := docker.Inspect(ictx, host)
	task := err == nil && self.Labels[dockerwatch.LabelSwarmServiceID] != ""
	use := info.LocalState == "active" && info.ControlAvailable && task
	log.Info("orchestrator detected", keyState, info.LocalState, "swarm_manager", info.ControlAvailable, "swarm_task", task,
		"orchestrator", map[bool]string{true: orchestratorSwarm, false: orchestratorCompose}[use])
	return use, nil
}

// swarmSelf is where the controller runs in the swarm.
type swarmSelf struct {
	serviceID string
	stack     string
	networks  []string // its overlay networks: the only ones probed
}

// runSwarm wires swarm mode: the same queue, workers, rotator, status and
// servers as compose mode, around swarm.Reconciler and a swarm Watcher.
func runSwarm(ctx context.Context, cfg Config, log *slog.Logger) error {
	docker, err := dockerwatch.New(cfg.DockerHost)
	if err != nil {
		return fmt.Errorf("creating Docker client: %w", err)
	}
	defer docker.Close()
	docker.KeepEnv = probe.TargetEnv()
	self, err := detectSwarmSelf(ctx, docker, cfg.Project, log)
	if err != nil {
		return err
	}
	authority, backup, err := openSwarmAuthority(ctx, cfg, docker, log)
	if err != nil {
		return err
	}
	store, err := state.Open(cfg.StateDir, state.Options{Timeout: 2 * time.Second, Logger: log})
	if err != nil {
		return fmt.Errorf("opening state: %w", err)
	}
	defer store.Close()
	p := &parts{cfg: cfg, log: log, authority: authority, store: store, docker: docker,
		issue: certs.IssueOptions{KeyAlgorithm: cfg.KeyAlgorithm, Lifetime: cfg.LeafLifetime}, prober: probe.New(probe.Options{}),
		reg: prometheus.NewRegistry(), queue: reconcile.NewQueue(reconcile.QueueOptions{})}
	p.metrics = newMetrics(p.reg)
	p.metrics.setInfo(cfg)
	comps, err := p.swarmComponents(self, backup)
	if err != nil {
		return err
	}
	return runComponents(ctx, comps)
}

// openSwarmAuthority restores the CA from its sealed backup in the swarm
// (when the working copy is empty, as on a fresh node), opens it, and
// backs it up at once, so that no bundle is ever issued by a CA the swarm
// does not hold.
func openSwarmAuthority(ctx context.Context, cfg Config, docker *dockerwatch.Client, log *slog.Logger) (*certs.Authority, *swarm.CABackup, error) {
	kek, err := os.ReadFile(cfg.SwarmCAKEK)
	if err != nil {
		return nil, nil, fmt.Errorf("swarm mode needs the key-encryption key that seals the CA's backup (--swarm-ca-kek): %w; create it with: head -c 32 /dev/urandom | docker secret create crank-ca-kek -", err)
	}
	if len(kek) < swarm.MinKEKSize {
		return nil, nil, fmt.Errorf("--swarm-ca-kek %s holds %d bytes, want at least %d random bytes", cfg.SwarmCAKEK, len(kek), swarm.MinKEKSize)
	}
	backup := &swarm.CABackup{Dir: cfg.SwarmCADir, KEK: kek, Configs: docker, Log: log}
	restored, err := backup.Restore(ctx)
	if err != nil {
		return nil, nil, err
	}
	caCfg := cfg
	caCfg.StateDir = cfg.SwarmCADir
	authority, err := openAuthority(caCfg, log)
	if err != nil {
		return nil, nil, err
	}
	if err := backup.Save(ctx); err != nil {
		return nil, nil, err
	}
	log.Info("CA in the swarm", keyRestored, restored)
	return authority, backup, nil
}

// detectSwarmSelf finds the controller's own service, stack and overlay
// networks from its container, waiting for the engine like detectScope.
func detectSwarmSelf(ctx context.Context, docker *dockerwatch.Client, stack string, log *slog.Logger) (swarmSelf, error) {
	var self swarmSelf
	op := func() error {
		if err := docker.Ping(ctx); err != nil {
			return err
		}
		info, err := docker.SwarmInfo(ctx)
		if err != nil {
			return err
		}
		if !info.ControlAvailable {
			return backoff.Permanent(fmt.Errorf("--orchestrator swarm: this engine is not a swarm manager (state %s); run the controller on a manager (deploy.placement.constraints: node.role == manager)", info.LocalState))
		}
		host, _ := os.Hostname()
		c, err := docker.Inspect(ctx, host)
		if errors.Is(err, dockerwatch.ErrNotFound) {
			self = swarmSelf{stack: stack}
			return nil
		}
		if err != nil {
			return err
		}
		self = swarmSelf{serviceID: c.Labels[dockerwatch.LabelSwarmServiceID], stack: stack}
		if self.stack == "" {
			self.stack = c.Labels[dockerwatch.LabelStackNamespace]
		}
		for name := range c.Networks {
			if name != "ingress" && name != "bridge" && name != "docker_gwbridge" {
				self.networks = append(self.networks, name)
			}
		}
		slices.Sort(self.networks)
		return nil
	}
	b := backoff.NewExponentialBackOff(backoff.WithMaxInterval(10*time.Second), backoff.WithMaxElapsedTime(0))
	if err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), func(err error, _ time.Duration) {
		log.Warn("waiting for Docker", keyError, err)
	}); err != nil {
		return self, fmt.Errorf("connecting to Docker: %w", err)
	}
	log.Info("managing swarm services", keyStack, self.stack, keySelf, self.serviceID, keyNetworks, self.networks,
		keyAPIVersion, docker.ServerAPIVersion())
	return self, nil
}

// swarmComponents builds swarm mode's long-running parts.
func (p *parts) swarmComponents(self swarmSelf, backup *swarm.CABackup) ([]component, error) {
	rec := p.swarmReconciler(self)
	rot := p.rotator()
	rot.Volume, rot.Containers, rot.Enqueue = rec, rec, rec.EnqueueTask(p.queue.Add)
	rot.StallAfter = 3*p.cfg.ProbeInterval + p.cfg.StartGrace
	rot.ActionInterval, rot.Production = p.cfg.ActionInterval, p.cfg.Environment == reconcile.Production
	rot.Metrics = newRolloverMetrics(p.reg)
	if err := rot.PrimeCredentials(); err != nil {
		return nil, err
	}
	ctrl := reconcile.NewController(rec, p.queue, reconcile.ControllerOptions{Workers: p.cfg.Workers, Logger: p.log, Metrics: p.metrics})
	watcher := dockerwatch.NewSwarmWatcher(p.docker.SDK(), p.queue, dockerwatch.WatcherOptions{
		Resync: p.cfg.Resync, WatchdogInterval: p.cfg.Watchdog, Logger: p.log, Metrics: p.metrics,
	})
	p.metrics.trackStream(p.reg, watcher)
	sweeper := &swarm.Sweeper{Reconciler: rec, Records: p.store, Every: p.cfg.Resync, Log: p.log}
	// `controller identity release NAME`: as in compose mode, remove the old
	// owner first; its bundle generations (which name it) go with it.
	idReq := &identityRequests{stateDir: p.cfg.StateDir, store: p.store, enqueue: rec.EnqueueTask(p.queue.Add), every: p.cfg.CARotateInterval, log: p.log}
	comps := []component{
		{"controller", ctrl.Start}, {"ca-rotation", rot.Start}, {"ca-backup", backup.Start},
		{"swarm-sweep", sweeper.Start}, {"identity-requests", idReq.Start}, {"watcher", watcher.Start},
	}
	return p.servers(comps, watcher, p.swarmStatusHandler(rec, rot))
}

// swarmReconciler is the swarm reconciler, with compose mode's policy.
func (p *parts) swarmReconciler(self swarmSelf) *swarm.Reconciler {
	cfg := p.cfg
	compose := p.reconciler() // the same policy, limits and identities as compose mode
	return &swarm.Reconciler{
		Engine: p.docker, Authority: p.authority, Store: p.store, Prober: p.prober,
		Limiter:  compose.Limiter,
		Scope:    swarm.Scope{Stack: self.stack, SelfServiceID: self.serviceID},
		Reserved: compose.Reserved, Root: cfg.CertsRoot, Networks: self.networks,
		Levels: compose.Levels, Issue: p.issue, Renew: cfg.RenewFraction, Domain: cfg.TrustDomain,
		Interval: cfg.ProbeInterval, Metrics: newSwarmMetrics(p.reg, p.metrics), Log: p.log,
	}
}

// swarmStatusHandler serves the record-based status API (tasks appear as
// containers) and GET /api/v1/swarm (services, tasks, nodes).
func (p *parts) swarmStatusHandler(rec *swarm.Reconciler, rot *rotation.Rotator) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/swarm", &swarm.StatusHandler{Reconciler: rec, Nodes: p.docker})
	mux.Handle("/", status.NewHandler(status.Funcs{
		RecordsFunc: p.store.List,
		SummaryFunc: func() status.Summary {
			ca := p.authority.Active().Cert
			return status.Summary{Mode: p.cfg.Mode, Environment: p.cfg.Environment, Project: rec.Scope.Stack,
				Version: version(), CANotAfter: ca.NotAfter, CASubject: ca.Subject.String(), CARollover: rolloverSummary(rot.Status()),
				ProductionMinimum: p.cfg.ProductionMinimum}
		},
	}))
	return mux
}
