package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/rotation"
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
	log.Info("starting", keyVersion, version(), keyEnvironment, cfg.Environment, keyMode, cfg.Mode)
	switch swarmMode, err := useSwarm(ctx, cfg, log); {
	case err != nil:
		return err
	case swarmMode:
		return runSwarm(ctx, cfg, log) // swarm.go
	}
	p, closeParts, err := openParts(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer closeParts()
	comps, err := p.components()
	if err != nil {
		return err
	}
	return runComponents(ctx, comps)
}

// component is a long-running part of the daemon: start blocks until ctx
// ends (returning nil) or the part fails.
type component struct {
	name  string
	start func(context.Context) error
}

// runComponents starts every component and waits for all of them. The
// first failure cancels the others, so the process exits (and its restart
// policy brings it back) instead of running without a part.
func runComponents(ctx context.Context, comps []component) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range comps {
		g.Go(func() error {
			if err := c.start(gctx); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// openAuthority opens (or creates) the CA, recovering one that expired
// while the controller was down: an expired CA is not a reason to stay down.
func openAuthority(cfg Config, log *slog.Logger) (*certs.Authority, error) {
	now := time.Now()
	authority, created, err := certs.OpenAuthority(cfg.StateDir, certs.AuthorityOptions{
		KeyAlgorithm: certs.ECDSAP256,
		Lifetime:     cfg.CALifetime,
	}, now)
	if errors.Is(err, certs.ErrCAExpired) && authority != nil {
		log.Error("the CA has expired; recovering with a new CA", keyError, err)
		err = rotation.RecoverExpired(authority, now, log)
	}
	if err != nil {
		return nil, err // certs names the state dir and the file at fault
	}
	log.Info("CA ready", keyCreated, created, keyCA, authority.Active().Cert.NotAfter)
	return authority, nil
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
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true}))
	if statusHandler != nil {
		mux.Handle("/", statusHandler)
	}
	return mux
}

// rolloverSummary is the status API's view of the rotator's progress.
func rolloverSummary(st rotation.Status) *status.Rollover {
	return &status.Rollover{Phase: string(st.Phase), Since: st.Since, Done: st.Done, Total: st.Total,
		WaitingFor: st.WaitingFor, Message: st.Message, RotateAt: st.RotateAt,
		Waiting: rolloverWaiting(st.Blockers), NotWaitedFor: rolloverNotWaited(st.Skipped)}
}
