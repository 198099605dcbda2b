package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/servicekit"
)

// Mode selects which real-world behaviour the service imitates.
type Mode string

const (
	ModeAdaptive     Mode = "adaptive"
	ModeTheater      Mode = "theater"
	ModePlainOnly    Mode = "plain-only"
	ModeCrashOnStart Mode = "crash-on-start"
)

// config is the service's whole configuration, read from the environment.
type config struct {
	// Service is SERVICE_NAME; required because it names the certs dir and the
	// client identity in logs.
	Service string
	// CertsDir is CERTS_DIR; without it, where servicekit.Locate points
	// (CRANK_CERTS_DIR, /certs/<Service>, /etc/certs/<Service>).
	CertsDir string
	// HTTPSAddr and HTTPAddr are listen addresses built from
	// SERVICE_HTTPS_PORT (default 8443) and SERVICE_PORT (default 8080);
	// tests replace them with loopback :0 addresses.
	HTTPSAddr, HTTPAddr string
	// HTTPSPort and HTTPPort are the bare ports, which the healthcheck dials
	// on localhost.
	HTTPSPort, HTTPPort string
	// Mode is MODE, default adaptive.
	Mode Mode
	// ReloadOnSIGHUP is RELOAD_SIGNAL=SIGHUP: the service declares that
	// SIGHUP re-reads its cert files. Without it SIGHUP keeps Go's default
	// action (exit), like a Python process that never installed a handler.
	ReloadOnSIGHUP bool
	// LoadOnce is RELOAD=off: the certificates are read once at start (and
	// on the reload signal), like uvicorn. The default, RELOAD=watch, takes
	// each new bundle the controller publishes without a restart. The
	// controller's tests of the restart-based path need LoadOnce.
	LoadOnce bool
	// Poll is how often a watching service looks for a new bundle; zero
	// means servicekit.DefaultPoll. Tests shorten it.
	Poll time.Duration
	// CertsWait is CERTS_WAIT (default 0: don't wait): how long to wait at
	// start for a complete, consistent bundle before choosing the level.
	// What the wait ends in follows CRANK_ENVIRONMENT (servicekit.Wait).
	CertsWait time.Duration
	// AlsoHTTP is ALSO_HTTP: keep the plain port open next to TLS.
	AlsoHTTP bool
	// CallURLs is CALL_URL, comma-separated https URLs a worker calls every
	// CallInterval (CALL_INTERVAL, default 5s) with its client certificate,
	// as the seed's workers call the platform.
	CallURLs     []string
	CallInterval time.Duration
	// AllowHTTPHealthcheck is ALLOW_HTTP_HEALTHCHECK: the healthcheck
	// subcommand may fall back to plain HTTP (a visible downgrade).
	AllowHTTPHealthcheck bool
	// Drain is DRAIN_ON_SIGTERM (default 0: exit at once). On SIGTERM the
	// listeners close at once, but the process exits only this much later,
	// as a server finishing in-flight work does. Meanwhile the container
	// is running yet answers nothing: what a prober sees during `docker
	// stop` or `compose down` of a real draining service.
	Drain time.Duration

	// kit is servicekit's view of the environment (CRANK_ENVIRONMENT, and
	// CRANK_CERTS_DIR when CERTS_DIR is unset, so a wait can find a bundle
	// that appears after start). Zero in tests that build a config.
	kit servicekit.Config
}

// loadConfig reads the environment through getenv so tests need no real env.
// Invalid values fail here, at start, with a message naming the variable.
func loadConfig(getenv func(string) string) (config, error) {
	cfg := config{
		Service:   getenv("SERVICE_NAME"),
		CertsDir:  getenv("CERTS_DIR"),
		HTTPSPort: orDefault(getenv("SERVICE_HTTPS_PORT"), "8443"),
		HTTPPort:  orDefault(getenv("SERVICE_PORT"), "8080"),
		Mode:      Mode(orDefault(getenv("MODE"), string(ModeAdaptive))),
	}
	for _, step := range []func(*config, func(string) string) error{loadServing, loadReload, loadFlags, loadCalls} {
		if err := step(&cfg, getenv); err != nil {
			return config{}, err
		}
	}
	return cfg, nil
}

// loadServing reads who the service is, where its bundle is, its ports and
// its mode.
func loadServing(cfg *config, getenv func(string) string) error {
	if cfg.Service == "" {
		return fmt.Errorf("SERVICE_NAME is required")
	}
	kit, err := servicekit.FromEnv(cfg.Service, getenv)
	if err != nil {
		return fmt.Errorf("SERVICE_NAME=%q: %w", cfg.Service, err)
	}
	kit.Dir = cfg.CertsDir
	cfg.kit, cfg.CertsDir = kit, kit.BundleDir()
	for name, port := range map[string]string{"SERVICE_HTTPS_PORT": cfg.HTTPSPort, "SERVICE_PORT": cfg.HTTPPort} {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s=%q: want a port number 1-65535", name, port)
		}
	}
	cfg.HTTPSAddr, cfg.HTTPAddr = ":"+cfg.HTTPSPort, ":"+cfg.HTTPPort
	switch cfg.Mode {
	case ModeAdaptive, ModeTheater, ModePlainOnly, ModeCrashOnStart:
		return nil
	}
	return fmt.Errorf("MODE=%q: want adaptive, theater, plain-only or crash-on-start", cfg.Mode)
}

// loadReload reads how the service takes a new bundle, and how long it
// waits for one at start.
func loadReload(cfg *config, getenv func(string) string) error {
	switch sig := getenv("RELOAD_SIGNAL"); sig {
	case "":
	case "SIGHUP":
		cfg.ReloadOnSIGHUP = true
	default:
		return fmt.Errorf("RELOAD_SIGNAL=%q: only SIGHUP is supported", sig)
	}
	switch v := getenv("RELOAD"); v {
	case "", "watch":
	case "off":
		cfg.LoadOnce = true
	default:
		return fmt.Errorf("RELOAD=%q: want watch or off", v)
	}
	d, err := durationEnv(getenv, "CERTS_WAIT", 0, "a duration such as 30s")
	cfg.CertsWait = d
	return err
}

// loadFlags reads the behaviour switches: HTTP next to HTTPS, an HTTP
// healthcheck, and draining on SIGTERM.
func loadFlags(cfg *config, getenv func(string) string) error {
	var err error
	if cfg.AlsoHTTP, err = boolEnv(getenv, "ALSO_HTTP"); err != nil {
		return err
	}
	if cfg.AllowHTTPHealthcheck, err = boolEnv(getenv, "ALLOW_HTTP_HEALTHCHECK"); err != nil {
		return err
	}
	cfg.Drain, err = durationEnv(getenv, "DRAIN_ON_SIGTERM", 0, "a duration such as 25s")
	return err
}

// loadCalls reads the peers a worker calls, and how often.
func loadCalls(cfg *config, getenv func(string) string) error {
	for _, u := range strings.Split(getenv("CALL_URL"), ",") {
		if u = strings.TrimSpace(u); u == "" {
			continue
		}
		if !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("CALL_URL=%q: want https URLs (workers call peers over mTLS)", u)
		}
		cfg.CallURLs = append(cfg.CallURLs, u)
	}
	d, err := durationEnv(getenv, "CALL_INTERVAL", 10*time.Millisecond, "a duration of at least 10ms")
	cfg.CallInterval = cmp.Or(d, 5*time.Second)
	return err
}

// durationEnv reads name as a duration of at least atLeast; unset is zero.
func durationEnv(getenv func(string) string, name string, atLeast time.Duration, want string) (time.Duration, error) {
	v := getenv(name)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < atLeast {
		return 0, fmt.Errorf("%s=%q: want %s", name, v, want)
	}
	return d, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func boolEnv(getenv func(string) string, name string) (bool, error) {
	v := getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want 1/0/true/false", name, v)
	}
	return b, nil
}

// waitConfig is the kit config a start-up wait uses: without CERTS_DIR it
// applies Locate's rules again on every look.
func (cfg config) waitConfig(logger *slog.Logger) servicekit.Config {
	kc := cfg.kit
	if kc.Service == "" {
		kc = servicekit.Config{Service: cfg.Service, Dir: cfg.CertsDir}
	}
	kc.Logger, kc.Poll = logger, cfg.Poll
	return kc
}

// sourceConfig is the kit config of the Source serving from CertsDir,
// which must keep holding the files the level was chosen on.
func (cfg config) sourceConfig(logger *slog.Logger, require servicekit.FileSet) servicekit.Config {
	return servicekit.Config{
		Service: cfg.Service, Dir: cfg.CertsDir, Environment: cfg.kit.Environment,
		Logger: logger, Poll: cfg.Poll, LoadOnce: cfg.LoadOnce, Require: require,
	}
}

// reloadName is how /bootinfo reports the reload mode.
func (cfg config) reloadName() string {
	if cfg.LoadOnce {
		return "off"
	}
	return "watch"
}
