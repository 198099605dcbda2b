package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/status"
)

// mtlsStatusServer serves the status API and dashboard over mTLS with our
// own CA, and writes the operator's client bundle so `controller status
// --tls-dir` (e.g. through docker exec) can use it.
func mtlsStatusServer(cfg Config, a *certs.Authority, issue certs.IssueOptions, h http.Handler, log *slog.Logger) (func(context.Context) error, error) {
	host, _ := os.Hostname()
	names := []string{"localhost", "127.0.0.1", "::1", controllerIdentity}
	if host != "" {
		names = append(names, host)
	}
	tlsCfg, err := status.ListenerTLS(a, names, issue, time.Now())
	if err != nil {
		return nil, fmt.Errorf("preparing the mTLS status listener: %w", err)
	}
	if err := status.WriteOperatorBundle(cfg.OperatorDir, a, issue, time.Now()); err != nil {
		return nil, fmt.Errorf("writing the operator bundle: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.ListenMTLS)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", cfg.ListenMTLS, err)
	}
	log.Info("serving the status API over mTLS", keyListen, ln.Addr().String(), keyOperatorDir, cfg.OperatorDir)
	srv := newHTTPServer(h, defaultServerLimits)
	srv.TLSConfig = tlsCfg
	return func(ctx context.Context) error {
		go func() {
			<-ctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		go refreshOperatorBundle(ctx, cfg.OperatorDir, a, issue, log)
		if err := srv.Serve(tls.NewListener(ln, tlsCfg)); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, nil
}

// refreshOperatorBundle rewrites the operator bundle daily, well inside any
// sane leaf lifetime, and within a minute of a CA change (a rollover's
// promote or retire), so the CLI never holds an expired certificate or one
// from a retired CA.
func refreshOperatorBundle(ctx context.Context, dir string, a *certs.Authority, issue certs.IssueOptions, log *slog.Logger) {
	every := max(min(24*time.Hour, issue.Lifetime/3), time.Minute)
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	written, trust := time.Now(), string(a.TrustBundle())
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if time.Since(written) < every && string(a.TrustBundle()) == trust {
			continue
		}
		if err := status.WriteOperatorBundle(dir, a, issue, time.Now()); err != nil {
			log.Error("refreshing the operator bundle", keyError, err)
			continue
		}
		written, trust = time.Now(), string(a.TrustBundle())
	}
}
