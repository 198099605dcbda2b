package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// parts are the long-lived objects the daemon's components share, opened
// once by openParts and wired explicitly, with no registry.
type parts struct {
	cfg       Config
	log       *slog.Logger
	authority *certs.Authority
	store     *state.Store
	volume    *certs.Volume
	docker    *dockerwatch.Client
	scope     reconcile.Scope
	networks  []string
	issue     certs.IssueOptions
	prober    *probe.Prober
	reg       *prometheus.Registry
	metrics   *metrics
	queue     *reconcile.Queue
}

// openParts opens the CA, the state, the volume and Docker, and finds the
// compose project to manage. The returned func closes what was opened.
func openParts(ctx context.Context, cfg Config, log *slog.Logger) (*parts, func(), error) {
	p := &parts{cfg: cfg, log: log}
	var closers []func()
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	err := p.open(ctx, func(c func()) { closers = append(closers, c) })
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	p.issue = certs.IssueOptions{KeyAlgorithm: cfg.KeyAlgorithm, Lifetime: cfg.LeafLifetime}
	// The rotator owns the prober's client certificate (see rotator).
	p.prober = probe.New(probe.Options{})
	p.reg = prometheus.NewRegistry()
	p.metrics = newMetrics(p.reg)
	p.metrics.setInfo(cfg)
	p.metrics.Expiry("", "ca", p.authority.Active().Cert.NotAfter)
	p.queue = reconcile.NewQueue(reconcile.QueueOptions{})
	return p, closeAll, nil
}

func (p *parts) open(ctx context.Context, onClose func(func())) error {
	var err error
	if p.authority, err = openAuthority(p.cfg, p.log); err != nil {
		return err
	}
	if p.store, err = state.Open(p.cfg.StateDir, state.Options{Timeout: 2 * time.Second, Logger: p.log}); err != nil {
		return fmt.Errorf("opening state: %w", err)
	}
	onClose(func() { _ = p.store.Close() })
	if p.volume, err = certs.OpenVolume(p.cfg.CertsRoot); err != nil {
		return fmt.Errorf("opening certs root: %w", err)
	}
	onClose(func() { _ = p.volume.Close() })
	if p.docker, err = dockerwatch.New(p.cfg.DockerHost); err != nil {
		return fmt.Errorf("creating Docker client: %w", err)
	}
	p.docker.KeepEnv = probe.TargetEnv()
	p.scope, p.networks, err = detectScope(ctx, p.docker, p.cfg.Project, p.log)
	return err
}

// sweepEvery is how many resync intervals pass between two sweeps of the
// state's records.
const sweepEvery = 12

// noteFlushEvery is how often records noted in memory (a probe's time,
// nothing a crash may not lose) are written to the state file.
const noteFlushEvery = 10 * time.Second

// components builds every long-running part, in the order they start.
func (p *parts) components() ([]component, error) {
	rec := p.reconciler()
	rot := p.rotator()
	wireRollover(rec, rot, p.cfg, p.reg)
	if err := rot.PrimeCredentials(); err != nil {
		return nil, err
	}
	ctrl := reconcile.NewController(rec, p.queue, reconcile.ControllerOptions{Workers: p.cfg.Workers, Logger: p.log, Metrics: p.metrics})
	watcher := dockerwatch.NewWatcher(p.docker.SDK(), p.queue, dockerwatch.WatcherOptions{
		Resync: p.cfg.Resync, WatchdogInterval: p.cfg.Watchdog, Logger: p.log, Metrics: p.metrics, Interventions: p.docker.Interventions,
		Inspections: p.docker.Inspections,
	})
	// The watcher's resync finds containers gone while it was connected; the
	// sweep is for those gone while the controller was down, so after the
	// one at start it runs seldom.
	p.metrics.trackStream(p.reg, watcher)
	sweeper := &reconcile.Sweeper{Records: p.store, Enqueue: p.queue.Add, Every: sweepEvery * p.cfg.Resync, Log: p.log,
		// The active CA changes on a rollover or a recovery.
		Tick: func() { p.metrics.Expiry("", "ca", p.authority.Active().Cert.NotAfter) }}
	idReq := &identityRequests{stateDir: p.cfg.StateDir, store: p.store, enqueue: p.queue.Add, every: p.cfg.CARotateInterval, log: p.log}
	comps := []component{
		{"controller", ctrl.Start}, {"ca-rotation", rot.Start}, {"records", sweeper.Start},
		{"identity-requests", idReq.Start}, {"watcher", watcher.Start},
		{"records-flush", func(ctx context.Context) error { return p.store.FlushEvery(ctx, noteFlushEvery) }},
	}
	return p.servers(comps, watcher, p.statusHandler(rot))
}

// servers adds the HTTP listeners to comps: health, readiness and metrics
// on --listen, and the status API there or, with --listen-mtls, only over
// mTLS on its own listener.
func (p *parts) servers(comps []component, ready readiness, statusHandler http.Handler) ([]component, error) {
	plainStatus := statusHandler
	if p.cfg.ListenMTLS != "" {
		mtlsSrv, err := mtlsStatusServer(p.cfg, p.authority, p.issue, statusHandler, p.log)
		if err != nil {
			return nil, err
		}
		comps = append(comps, component{"status-mtls", mtlsSrv})
		// /healthz, /readyz and /metrics stay plain for the compose
		// healthcheck and Prometheus.
		plainStatus = nil
	}
	if p.cfg.PprofListen != "" {
		c, err := p.pprofServer()
		if err != nil {
			return nil, err
		}
		comps = append(comps, c)
	}
	srv := newHTTPServer(newMux(p.reg, ready, plainStatus), defaultServerLimits)
	ln, err := net.Listen("tcp", p.cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", p.cfg.Listen, err)
	}
	p.log.Info("serving health and metrics", keyListen, ln.Addr().String())
	return append(comps, component{"http", func(ctx context.Context) error { return serveUntil(ctx, srv, ln) }}), nil
}

// pprofServer serves Go's runtime profiles on --pprof-listen, which the
// configuration holds to loopback. Its write timeout leaves room for a
// 60 s CPU profile.
func (p *parts) pprofServer() (component, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	limits := defaultServerLimits
	limits.WriteTimeout = 2 * time.Minute
	srv := newHTTPServer(mux, limits)
	ln, err := net.Listen("tcp", p.cfg.PprofListen)
	if err != nil {
		return component{}, fmt.Errorf("listening on %s: %w", p.cfg.PprofListen, err)
	}
	p.log.Info("serving runtime profiles", keyListen, ln.Addr().String())
	return component{"pprof", func(ctx context.Context) error { return serveUntil(ctx, srv, ln) }}, nil
}

// serveUntil serves on ln until ctx ends, then shuts srv down.
func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
