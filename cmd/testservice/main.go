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
	a, err := newApp(cfg, logger, time.Now)
	if err != nil {
		return err
	}
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
