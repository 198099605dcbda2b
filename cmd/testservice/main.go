package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/crank-platform/crank-mtls-controller/servicekit"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run dispatches subcommands and returns the process exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
		case "healthcheck":
			return healthcheck(getenv, stdout, stderr)
		case "cat":
			return catFile(args[1:], stdout, stderr)
		case "write":
			return writeFile(args[1:], stderr)
		case "mkfifo":
			return mkfifo(args[1:], stderr)
		case "link":
			return link(args[1:], stderr)
		default:
			fmt.Fprintf(stderr, "unknown subcommand %q; want serve, healthcheck, cat <path>, write <path> <octal-mode> <base64>, mkfifo <path> or link <target> <path>\n", args[0])
			return 2
		}
	}
	logger := slog.New(slog.NewJSONHandler(stdout, nil))
	cfg, err := loadConfig(getenv)
	if err != nil {
		logger.Error("invalid configuration", keyError, err)
		return 1
	}
	if cfg.Mode == ModeCrashOnStart {
		logger.Error("crash-on-start mode: exiting", keyService, cfg.Service, keyMode, cfg.Mode)
		return 1
	}
	if err := serve(cfg, logger); err != nil {
		logger.Error("service failed", keyService, cfg.Service, keyError, err)
		return 1
	}
	return 0
}

// serve runs the service until SIGTERM/SIGINT. SIGHUP is only caught when
// the service declared it as its reload signal.
func serve(cfg config, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg, err := waitForCerts(ctx, cfg, logger)
	if err != nil {
		return err
	}
	a, err := newApp(cfg, logger, time.Now)
	if err != nil {
		return err
	}
	defer a.close()
	if err := a.listen(); err != nil {
		return err
	}
	if cfg.ReloadOnSIGHUP {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case <-hup:
					if err := a.reload(); err != nil {
						logger.Error("reload failed, still serving the previous certificate", keyError, err)
					}
				}
			}
		}()
	}
	go a.callLoop(ctx)
	err = a.runThenDrain(ctx)
	logger.Info("stopped", keyService, cfg.Service)
	return err
}

// waitForCerts holds the start for up to CERTS_WAIT until the bundle is
// complete and consistent (servicekit.Wait): in production an incomplete
// bundle is then an error, in development one WARN and the start goes
// on. It returns cfg with the certs dir where the bundle was found.
func waitForCerts(ctx context.Context, cfg config, logger *slog.Logger) (config, error) {
	if cfg.CertsWait <= 0 {
		return cfg, nil
	}
	kc := cfg.waitConfig(logger)
	if _, err := servicekit.Wait(ctx, kc, cfg.CertsWait); err != nil {
		return cfg, err
	}
	cfg.CertsDir = kc.BundleDir()
	return cfg, nil
}
