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
}

// app is one running service: the boot decision plus its listeners.
type app struct {
	cfg    config
	dec    decision
	boot   bootInfo
	tls    *tlsServer // nil at level plain
	logger *slog.Logger
	now    func() time.Time

	httpsLn, httpLn net.Listener
	servers         []*http.Server

	calls callCounter

	// after is time.After; a field so tests can hold the drain open and
	// release it without waiting on the clock.
	after func(time.Duration) <-chan time.Time
}

// newApp gathers (scans the certs dir), decides, and loads the material.
func newApp(cfg config, logger *slog.Logger, now func() time.Time) (*app, error) {
	present, err := scanFiles(cfg.CertsDir)
	if err != nil {
		return nil, fmt.Errorf("scanning %s: %w", cfg.CertsDir, err)
	}
	a := &app{cfg: cfg, dec: decide(cfg.Mode, present), logger: logger, now: now, after: time.After}
	a.boot = bootInfo{
		CertsAtBoot: present[fileServerCert] && present[fileServerKey],
		FilesSeen:   present.names(),
		StartedAt:   now().UTC(),
	}
	logger.Info("security level chosen",
		keyService, cfg.Service, keyMode, cfg.Mode, keyLevel, a.dec.Level, keyReason, a.dec.Reason,
		keyCertsDir, cfg.CertsDir, keyFiles, a.boot.FilesSeen)
	if a.dec.Level != LevelPlain {
		m, err := loadMaterial(cfg, a.dec, now())
		if err != nil {
			return nil, err
		}
		a.tls = &tlsServer{}
		a.tls.cur.Store(m)
		logger.Info("serving certificate", keyFingerprint, m.fingerprint)
	}
	return a, nil
}

// reload re-reads the cert files for the level chosen at boot. The level
// itself never changes at runtime (a process can't turn its HTTP port into
// HTTPS), and a failed reload keeps serving the old material.
func (a *app) reload() error {
	if a.tls == nil {
		return fmt.Errorf("nothing to reload: serving plain HTTP since boot")
	}
	if a.dec.SelfSigned {
		return fmt.Errorf("nothing to reload: serving a self-signed cert")
	}
	m, err := loadMaterial(a.cfg, a.dec, a.now())
	if err != nil {
		return fmt.Errorf("reloading certs: %w", err)
	}
	a.tls.cur.Store(m)
	a.logger.Info("certificates reloaded", keyLevel, a.dec.Level, keyFingerprint, m.fingerprint)
	return nil
}

// servedFingerprint is the leaf handshakes get now ("" at level plain).
func (a *app) servedFingerprint() string {
	if a.tls == nil {
		return ""
	}
	return a.tls.cur.Load().fingerprint
}

// listen opens the ports the level calls for: HTTPS unless plain; HTTP when
// plain, or next to TLS only with ALSO_HTTP.
func (a *app) listen() error {
	if a.tls != nil {
		ln, err := net.Listen("tcp", a.cfg.HTTPSAddr)
		if err != nil {
			return fmt.Errorf("listening for https: %w", err)
		}
		a.httpsLn = tls.NewListener(ln, a.tls.config())
	}
	if a.tls == nil || a.cfg.AlsoHTTP {
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
