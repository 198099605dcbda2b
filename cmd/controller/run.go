package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/rotation"
	"github.com/crank-platform/crank-mtls-controller/state"
	"github.com/crank-platform/crank-mtls-controller/status"
)

// controllerIdentity is the client identity the prober presents. It is a
// service of its own in the trust domain, so a service's access logs show
// the controller's probes for what they are.
const controllerIdentity = "crank-mtls-controller"

// Log keys of this package.
const (
	keyError       = "error"
	keyProject     = "project"
	keySelf        = "self"
	keyAPIVersion  = "api_version"
	keyCA          = "ca_not_after"
	keyCreated     = "created"
	keyListen      = "listen"
	keyEnvironment = "environment"
	keyVersion     = "version"
	keySignal      = "signal"
	keyTimeout     = "timeout"
	keyNetworks    = "networks"
	keyMode        = "mode"
	keyOperatorDir = "operator_dir"
	keyIdentity    = "identity"
)

func runController(args []string) int {
	cfg, err := parseConfig(args, lookupEnv, os.Stderr)
	if errors.Is(err, flagHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "controller: %v\n", err)
		return 2
	}
	log := newLogger(os.Stderr, cfg.LogFormat, cfg.LogLevel)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go handleSignals(cancel, cfg.Shutdown, log)
	if err := run(ctx, cfg, log); err != nil {
		log.Error("controller stopped", keyError, err)
		return 1
	}
	log.Info("controller stopped cleanly")
	return 0
}

// handleSignals implements the shutdown contract: the first SIGTERM or
// SIGINT cancels the context and starts a drain; a second one, or a drain
// longer than timeout, exits at once.
func handleSignals(cancel context.CancelFunc, timeout time.Duration, log *slog.Logger) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	s := <-sigs
	log.Info("shutting down; a second signal exits at once", keySignal, s.String(), keyTimeout, timeout)
	cancel()
	select {
	case s = <-sigs:
		log.Warn("second signal: exiting now", keySignal, s.String())
	case <-time.After(timeout):
		log.Error("graceful shutdown timed out: exiting now", keyTimeout, timeout)
	}
	os.Exit(1)
}

// run wires the components and blocks until ctx ends or one of them fails.
func run(ctx context.Context, cfg Config, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	log.Info("starting", keyVersion, version(), keyEnvironment, cfg.Environment, keyMode, cfg.Mode)
	now := time.Now()
	authority, created, err := certs.OpenAuthority(cfg.StateDir, certs.AuthorityOptions{
		KeyAlgorithm: certs.ECDSAP256,
		Lifetime:     cfg.CALifetime,
	}, now)
	if errors.Is(err, certs.ErrCAExpired) && authority != nil {
		// rotation (issue 6): an expired CA is recovered, not a reason to stay down.
		log.Error("the CA has expired; recovering with a new CA", keyError, err)
		err = rotation.RecoverExpired(authority, now, log)
	}
	if err != nil {
		return err // certs names the state dir and the file at fault
	}
	log.Info("CA ready", keyCreated, created, keyCA, authority.Active().Cert.NotAfter)

	store, err := state.Open(cfg.StateDir, state.Options{Timeout: 2 * time.Second, Logger: log})
	if err != nil {
		return fmt.Errorf("opening state: %w", err)
	}
	defer store.Close()

	volume, err := certs.OpenVolume(cfg.CertsRoot)
	if err != nil {
		return fmt.Errorf("opening certs root: %w", err)
	}
	defer volume.Close()

	docker, err := dockerwatch.New(cfg.DockerHost)
	if err != nil {
		return fmt.Errorf("creating Docker client: %w", err)
	}
	scope, networks, err := detectScope(ctx, docker, cfg.Project, log)
	if err != nil {
		return err
	}
	issue := certs.IssueOptions{KeyAlgorithm: cfg.KeyAlgorithm, Lifetime: cfg.LeafLifetime}
	// The rotator owns the prober's client certificate (below).
	prober := probe.New(probe.Options{})

	reg := prometheus.NewRegistry()
	m := newMetrics(reg)
	m.Expiry("", "ca", authority.Active().Cert.NotAfter)
	queue := reconcile.NewQueue(reconcile.QueueOptions{})
	rec := &reconcile.ContainerReconciler{
		Containers: docker,
		Volume:     volume,
		Authority:  authority,
		Records:    store,
		Identities: store,
		Reserved: map[string]string{
			controllerIdentity:      "the controller (its prober and status listener)",
			status.OperatorIdentity: "the operator's client bundle",
		},
		TrustImageLabels: cfg.TrustImageLabels,
		Interventions:    docker.Interventions,
		Scope:            scope,
		TrustDomain:      cfg.TrustDomain,
		Issue:            issue,
		RenewFraction:    cfg.RenewFraction,
		Log:              log,
		Metrics:          m,
		Prober:           prober,
		Actions:          docker,
		Levels: reconcile.Policy{
			Environment:       cfg.Environment,
			Mode:              cfg.Mode,
			ProductionMinimum: cfg.ProductionMinimum,
			RestartBudget:     cfg.RestartBudget,
			BackoffBase:       cfg.RestartBackoff,
			BackoffMax:        10 * time.Minute,
			StartGrace:        cfg.StartGrace,
			Quarantine:        cfg.Quarantine,
		},
		Limiter:        &reconcile.Spacing{Interval: cfg.ActionInterval},
		ProbeInterval:  cfg.ProbeInterval,
		SharedNetworks: networks,
		ExpiryWarn:     cfg.ExpiryWarn,
	}
	// The CA rollover. It also owns the prober's client certificate: issued
	// here before any probe, renewed, and the successor's during an overlap.
	rotator := &rotation.Rotator{
		Authority:      authority,
		Store:          store,
		Volume:         volume,
		Containers:     docker,
		Prober:         prober,
		ProberIdentity: certs.Identity{Service: controllerIdentity, DNSNames: []string{controllerIdentity}},
		Issue:          issue,
		Enqueue:        queue.Add,
		StateDir:       cfg.StateDir,
		Fraction:       cfg.CARotateFraction,
		Timeout:        cfg.CARotateTimeout,
		Interval:       cfg.CARotateInterval,
		ExpiryWarn:     cfg.ExpiryWarn,
		Log:            log,
	}
	wireRollover(rec, rotator, cfg, reg)
	if err := rotator.PrimeCredentials(); err != nil {
		return err
	}
	ctrl := reconcile.NewController(rec, queue, reconcile.ControllerOptions{Workers: cfg.Workers, Logger: log, Metrics: m})
	watcher := dockerwatch.NewWatcher(docker.SDK(), queue, dockerwatch.WatcherOptions{
		Resync: cfg.Resync, WatchdogInterval: cfg.Watchdog, Logger: log, Metrics: m, Interventions: docker.Interventions,
	})

	statusHandler := status.NewHandler(status.Funcs{
		RecordsFunc: store.List,
		SummaryFunc: func() status.Summary {
			ca := authority.Active().Cert
			return status.Summary{Mode: cfg.Mode, Environment: cfg.Environment, Project: scope.Project,
				Version: version(), CANotAfter: ca.NotAfter, CASubject: ca.Subject.String(), CARollover: rolloverSummary(rotator.Status())}
		},
	})
	plainStatus := statusHandler
	if cfg.ListenMTLS != "" {
		// The status API is then served only over mTLS; /healthz, /readyz
		// and /metrics stay plain for the compose healthcheck and Prometheus.
		plainStatus = nil
	}
	srv := newHTTPServer(newMux(reg, watcher, plainStatus), defaultServerLimits)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", cfg.Listen, err)
	}
	log.Info("serving health and metrics", keyListen, ln.Addr().String())

	var wg sync.WaitGroup
	errs := make(chan error, 7)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	if cfg.ListenMTLS != "" {
		mtlsSrv, err := mtlsStatusServer(cfg, authority, issue, statusHandler, log)
		if err != nil {
			return err
		}
		goRun("status-mtls", mtlsSrv)
	}
	goRun("controller", ctrl.Start)
	goRun("ca-rotation", rotator.Start)
	goRun("records", func(ctx context.Context) error {
		return sweepRecords(ctx, store, queue, cfg.Resync, func() {
			// The active CA changes on a rollover or a recovery.
			m.Expiry("", "ca", authority.Active().Cert.NotAfter)
		}, log)
	})
	goRun("identity-requests", (&identityRequests{stateDir: cfg.StateDir, store: store, enqueue: queue.Add,
		every: cfg.CARotateInterval, log: log}).Start)
	goRun("watcher", watcher.Start)
	goRun("http", func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	var first error
	select {
	case first = <-errs:
		// One part failed: stop the others, so the process exits (and its
		// restart policy brings it back) instead of running without it.
		log.Error("a component failed; shutting down", keyError, first)
		cancel()
	case <-ctx.Done():
	}
	wg.Wait()
	return first
}

// detectScope finds the compose project to manage: the flag if given, else
// the project of the controller's own container, found by inspecting its
// hostname (Docker sets it to the short container ID). It waits for the
// engine with backoff rather than failing a start that races the daemon.
func detectScope(ctx context.Context, docker *dockerwatch.Client, project string, log *slog.Logger) (reconcile.Scope, []string, error) {
	var scope reconcile.Scope
	var networks []string
	op := func() error {
		if err := docker.Ping(ctx); err != nil {
			return fmt.Errorf("pinging Docker: %w", err)
		}
		host, _ := os.Hostname()
		self, err := docker.Inspect(ctx, host)
		switch {
		case errors.Is(err, dockerwatch.ErrNotFound):
			scope = reconcile.Scope{Project: project}
		case err != nil:
			return fmt.Errorf("inspecting own container %s: %w", host, err)
		default:
			scope = reconcile.Scope{Project: project, SelfID: self.ID}
			if project == "" {
				scope.Project = self.Project
			}
			networks = networks[:0]
			for name := range self.Networks {
				networks = append(networks, name)
			}
		}
		return nil
	}
	b := backoff.NewExponentialBackOff(backoff.WithMaxInterval(10*time.Second), backoff.WithMaxElapsedTime(0))
	err := backoff.RetryNotify(op, backoff.WithContext(b, ctx), func(err error, d time.Duration) {
		log.Warn("waiting for Docker", keyError, err)
	})
	if err != nil {
		return scope, nil, fmt.Errorf("connecting to Docker: %w", err)
	}
	if scope.Project == "" {
		log.Warn("no compose project detected or configured: only containers labelled " + reconcile.LabelEnable + "=true are managed")
	}
	log.Info("managing containers", keyProject, scope.Project, keySelf, dockerwatch.ShortID(scope.SelfID), keyAPIVersion, docker.ServerAPIVersion(),
		keyNetworks, networks)
	return scope, networks, nil
}

// readiness is what /readyz needs from the watcher.
type readiness interface{ Ready() bool }

func newMux(reg *prometheus.Registry, ready readiness, statusHandler http.Handler) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Ready() {
			http.Error(w, "not ready: not connected to Docker or initial list not done", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if statusHandler != nil {
		mux.Handle("/", statusHandler)
	}
	return mux
}

// sweepRecords enqueues every container the state remembers, at start and
// then every interval. The watcher's list only shows containers that exist;
// this is how records of containers destroyed while the controller was down
// (or during a cut event stream) are found and cleaned up. tick runs every
// 30s at most, for gauges that follow state outside the reconciler.
func sweepRecords(ctx context.Context, store *state.Store, queue *reconcile.Queue, every time.Duration, tick func(), log *slog.Logger) error {
	t := time.NewTicker(min(every, 30*time.Second))
	defer t.Stop()
	last := time.Time{}
	for {
		tick()
		if time.Since(last) < every {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
			continue
		}
		last = time.Now()
		recs, err := store.List()
		if err != nil {
			log.Error("listing state records for sweep", keyError, err)
		}
		for _, r := range recs {
			queue.Add(r.ContainerID)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// rolloverSummary is the status API's view of the rotator's progress.
func rolloverSummary(st rotation.Status) *status.Rollover {
	return &status.Rollover{Phase: string(st.Phase), Since: st.Since, Done: st.Done, Total: st.Total,
		WaitingFor: st.WaitingFor, Message: st.Message, RotateAt: st.RotateAt,
		Waiting: rolloverWaiting(st.Blockers), NotWaitedFor: rolloverNotWaited(st.Skipped)}
}
