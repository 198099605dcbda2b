package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/crank-platform/crank-mtls-controller/servicekit"
)

// Log keys, in one place.
const (
	keyService     = "service"
	keyMode        = "mode"
	keyLevel       = "security_level"
	keyReason      = "reason"
	keyCertsDir    = "certs_dir"
	keyFiles       = "files"
	keyAddr        = "addr"
	keyScheme      = "scheme"
	keyFingerprint = "served_cert_sha256"
	keyError       = "error"
	keyURL         = "url"
	keyStatus      = "status"
	keyDrain       = "drain"
	keyReload      = "reload"
	keyGeneration  = "generation"
)

// shutdownGrace bounds graceful shutdown so `docker stop` returns in well
// under a second; tests restart containers a lot.
const shutdownGrace = 500 * time.Millisecond

// bootInfo is what the service saw when it started; /bootinfo reports it so
// e2e tests can tell "found certs at first boot" from "needed a restart".
type bootInfo struct {
	CertsAtBoot bool      `json:"certs_at_boot"`
	FilesSeen   []string  `json:"files_seen_at_boot"`
	StartedAt   time.Time `json:"started_at"`
	// Reload is "watch" (new bundles are taken without a restart) or
	// "off" (RELOAD=off: loaded once, like uvicorn).
	Reload string `json:"reload"`
}

// app is one running service: the boot decision plus its listeners.
type app struct {
	cfg  config
	dec  decision
	boot bootInfo
	// current is the material handshakes get now; nil at level plain.
	current func() *servicekit.Material
	// src serves the bundle's files; nil at level plain and for a
	// self-signed cert.
	src *servicekit.Source
	// peers makes the worker's calls when src follows new bundles.
	peers  *http.Client
	logger *slog.Logger
	now    func() time.Time

	httpsLn, httpLn net.Listener
	servers         []*http.Server

	calls callCounter

	// after is time.After; a field so tests can hold the drain open and
	// release it without waiting on the clock.
	after func(time.Duration) <-chan time.Time
}

// newApp gathers (scans the certs dir), decides, and opens the material.
func newApp(cfg config, logger *slog.Logger, now func() time.Time) (*app, error) {
	present, err := servicekit.Present(cfg.CertsDir)
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", cfg.CertsDir, err)
	}
	a := &app{cfg: cfg, dec: decide(cfg.Mode, present), logger: logger, now: now, after: time.After}
	a.boot = bootInfo{
		CertsAtBoot: present[fileServerCert] && present[fileServerKey],
		FilesSeen:   present.Names(),
		StartedAt:   now().UTC(),
		Reload:      cfg.reloadName(),
	}
	logger.Info("security level chosen",
		keyService, cfg.Service, keyMode, cfg.Mode, keyLevel, a.dec.Level, keyReason, a.dec.Reason,
		keyCertsDir, cfg.CertsDir, keyFiles, a.boot.FilesSeen, keyReload, a.boot.Reload)
	if a.dec.Level == LevelPlain {
		return a, nil
	}
	if err := a.openMaterial(present); err != nil {
		return nil, err
	}
	logger.Info("serving certificate", keyFingerprint, a.servedFingerprint(), keyGeneration, a.current().Generation)
	return a, nil
}

// openMaterial loads what the level serves. A present but broken bundle is
// an error: like uvicorn with a bad ssl_certfile, the service refuses to
// start rather than silently downgrade. The Source must keep holding every
// file the level was chosen on.
func (a *app) openMaterial(present fileSet) error {
	if a.dec.SelfSigned {
		m, err := selfSignedMaterial(a.cfg.Service, a.now())
		if err != nil {
			return err
		}
		a.current = func() *servicekit.Material { return m }
		return nil
	}
	src, err := servicekit.NewSource(context.Background(), a.cfg.sourceConfig(a.logger, present))
	if err != nil {
		return fmt.Errorf("loading certs: %w", err)
	}
	a.src, a.current = src, src.Current
	if !a.cfg.LoadOnce {
		a.peers = &http.Client{
			Timeout:       callTimeout,
			Transport:     src.Transport(&http.Transport{DisableKeepAlives: true}),
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return nil
}

// close stops following the bundle.
func (a *app) close() {
	if a.src != nil {
		a.src.Close()
	}
}

// reload re-reads the cert files for the level chosen at boot (the reload
// signal). The level itself never changes at runtime (a process can't turn
// its HTTP port into HTTPS), and a failed reload keeps serving the old
// material.
func (a *app) reload() error {
	if a.current == nil {
		return fmt.Errorf("nothing to reload: serving plain HTTP since boot")
	}
	if a.src == nil {
		return fmt.Errorf("nothing to reload: serving a self-signed cert")
	}
	if err := a.src.Reload(); err != nil {
		return fmt.Errorf("reloading certs: %w", err)
	}
	return nil
}

// servedFingerprint is the leaf handshakes get now ("" at level plain).
func (a *app) servedFingerprint() string {
	if a.current == nil {
		return ""
	}
	return a.current().ServerFingerprint()
}

// listen opens the ports the level calls for: HTTPS unless plain; HTTP when
// plain, or next to TLS only with ALSO_HTTP.
func (a *app) listen() error {
	if a.current != nil {
		ln, err := net.Listen("tcp", a.cfg.HTTPSAddr)
		if err != nil {
			return fmt.Errorf("listening for https: %w", err)
		}
		a.httpsLn = tls.NewListener(ln, serverTLSConfig(a.current, a.dec.Level))
	}
	if a.current == nil || a.cfg.AlsoHTTP {
		ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
		if err != nil {
			a.closeListeners()
			return fmt.Errorf("listening for http: %w", err)
		}
		a.httpLn = ln
	}
	return nil
}

func (a *app) closeListeners() {
	for _, ln := range []net.Listener{a.httpsLn, a.httpLn} {
		if ln != nil {
			ln.Close()
		}
	}
}

// run serves until ctx ends or a listener fails, then shuts down within
// shutdownGrace.
func (a *app) run(ctx context.Context) error {
	errc := make(chan error, 2)
	for scheme, ln := range map[string]net.Listener{"https": a.httpsLn, "http": a.httpLn} {
		if ln == nil {
			continue
		}
		srv := &http.Server{
			Handler:           a.routes(),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
			// No HTTP/2 upgrade on the plain port either.
			TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		}
		a.servers = append(a.servers, srv)
		a.logger.Info("listening", keyScheme, scheme, keyAddr, ln.Addr().String())
		go func() { errc <- srv.Serve(ln) }()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("serving: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, srv := range a.servers {
		if serr := srv.Shutdown(sctx); serr != nil && !errors.Is(serr, context.DeadlineExceeded) {
			a.logger.Warn("shutdown", keyError, serr)
		}
		srv.Close() // whatever did not finish in the grace period
	}
	return err
}

// runThenDrain is run, then, when it ended because ctx did (SIGTERM) and
// DRAIN_ON_SIGTERM is set, the drain: the listeners are already closed,
// and the process stays for cfg.Drain more before it exits.
func (a *app) runThenDrain(ctx context.Context) error {
	if err := a.run(ctx); err != nil || a.cfg.Drain <= 0 {
		return err
	}
	a.logger.Info("listeners closed; draining before exit", keyService, a.cfg.Service, keyDrain, a.cfg.Drain.String())
	<-a.after(a.cfg.Drain)
	return nil
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", a.handleHealth)
	mux.HandleFunc("GET /bootinfo", a.handleBootInfo)
	mux.HandleFunc("GET /call", a.handleCall)
	mux.HandleFunc("GET /ws", a.handleWS)
	return mux
}
