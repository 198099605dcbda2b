package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// Config is the controller's whole configuration. Every field has a flag
// and an environment variable; the flag wins over the variable, which wins
// over the default. The table in the README is generated from the same
// definitions (see flagDefs).
type Config struct {
	DockerHost    string
	CertsRoot     string
	StateDir      string
	Environment   reconcile.Environment
	Listen        string
	Resync        time.Duration
	Workers       int
	LogFormat     string
	LogLevel      slog.Level
	Project       string
	TrustDomain   string
	KeyAlgorithm  certs.KeyAlgorithm
	LeafLifetime  time.Duration
	CALifetime    time.Duration
	RenewFraction float64
	Shutdown      time.Duration

	Watchdog          time.Duration
	ListenMTLS        string
	PprofListen       string
	OperatorDir       string
	Mode              reconcile.Mode
	ProbeInterval     time.Duration
	RestartBudget     int
	RestartBackoff    time.Duration
	StartGrace        time.Duration
	ReloadGrace       time.Duration
	ActionInterval    time.Duration
	ProductionMinimum probe.Level
	Quarantine        map[string]string
	TrustImageLabels  bool

	// CA rollover and expiry warnings (package rotation).
	CARotateFraction float64
	CARotateTimeout  time.Duration
	CARotateInterval time.Duration
	ExpiryWarn       []time.Duration

	// Swarm mode (package swarm; swarm.go).
	Orchestrator string
	SwarmCADir   string
	SwarmCAKEK   string
}

// flagDef ties a flag to its environment variable and documents both.
type flagDef struct {
	name, env, def, usage string
}

// flagDefs is the single list of settings; README's table mirrors it.
var flagDefs = []flagDef{
	{"docker-host", "DOCKER_HOST", "", "Docker engine address; empty uses the SDK default (unix:///var/run/docker.sock)"},
	{"certs-root", "CRANK_CERTS_ROOT", "/certs", "shared volume root; each service's bundle goes to <root>/<service>/"},
	{"state-dir", "CRANK_STATE_DIR", "/state", "controller state: the CA (ca.crt, ca.key) and state.db; never shared with services"},
	{"environment", "CRANK_ENVIRONMENT", "development", "development (degrade gracefully, report) or production (strict)"},
	{"listen", "CRANK_LISTEN", ":9090", "HTTP listen address for /healthz, /readyz and /metrics"},
	{"resync", "CRANK_RESYNC_INTERVAL", "5m", "resync interval: containers whose state changed since the last list are reconciled (all of them on every reconnect)"},
	{"workers", "CRANK_WORKERS", "4", "concurrent reconciles (1-64)"},
	{"log-format", "CRANK_LOG_FORMAT", "tint", "tint (human, coloured on a terminal) or json"},
	{"log-level", "CRANK_LOG_LEVEL", "info", "debug, info, warn or error"},
	{"project", "CRANK_PROJECT", "", "compose project to manage; empty detects the controller's own project"},
	{"trust-domain", "CRANK_TRUST_DOMAIN", "crank.local", "SPIFFE trust domain of client identities (spiffe://<domain>/service/<name>)"},
	{"key-algorithm", "CRANK_KEY_ALGORITHM", "ecdsa-p256", "leaf key algorithm: ecdsa-p256, rsa-2048, rsa-3072 or ed25519"},
	{"leaf-lifetime", "CRANK_LEAF_LIFETIME", "2160h", "lifetime of issued server and client certificates (90 days)"},
	{"ca-lifetime", "CRANK_CA_LIFETIME", "87600h", "lifetime of a CA the controller creates (10 years)"},
	{"renew-fraction", "CRANK_RENEW_FRACTION", "0.6667", "renew a leaf after this fraction of its lifetime (0 < f < 1)"},
	{"shutdown-timeout", "CRANK_SHUTDOWN_TIMEOUT", "10s", "how long a graceful shutdown may take before the process exits anyway"},
	{"listen-mtls", "CRANK_LISTEN_MTLS", "", "if set, serve the status API and dashboard here over mTLS with our CA (and not on --listen); clients use --operator-dir's bundle"},
	{"pprof-listen", "CRANK_PPROF_LISTEN", "", "if set, serve Go's runtime profiles (net/http/pprof) here; a loopback address only, such as 127.0.0.1:6060"},
	{"operator-dir", "CRANK_OPERATOR_DIR", "", "where the operator client bundle for --listen-mtls is written; default <state-dir>/operator"},
	{"watchdog-interval", "CRANK_WATCHDOG_INTERVAL", "30s", "how often the event stream watchdog pings Docker and checks for events the stream missed"},
	{"mode", "CRANK_MODE", "enforce", "enforce (restart, signal, relabel) or observe (log the plan, change no container): the rollback switch"},
	{"probe-interval", "CRANK_PROBE_INTERVAL", "30s", "how often each managed container is probed (also on every event)"},
	{"restart-budget", "CRANK_RESTART_BUDGET", "3", "restarts (or reload signals) per container per drift episode before it is reported degraded"},
	{"restart-backoff", "CRANK_RESTART_BACKOFF", "30s", "wait after the first action of an episode; doubles per action, capped at 10m"},
	{"reload-grace", "CRANK_RELOAD_GRACE", "30s", "how long a service labelled crank.security.reload=watch has to show a new bundle (served certificate, accepted client certificate) before the controller restarts it"},
	{"start-grace", "CRANK_START_GRACE", "10s", "time after a start before the controller acts on a container (a longer healthcheck start period wins)"},
	{"action-interval", "CRANK_ACTION_INTERVAL", "5s", "global limit: at most one container action per interval across the stack"},
	{"production-min-level", "CRANK_PRODUCTION_MIN_LEVEL", "mtls", "lowest level a label may ask for in production: mtls, tls or plain"},
	{"quarantine-labels", "CRANK_QUARANTINE_LABELS", "", "labels added when a container is relabelled, as k=v,k=v (e.g. traefik.enable=false)"},
	{"trust-image-labels", "CRANK_TRUST_IMAGE_LABELS", "false", "accept crank.security.* and compose labels that a container's image supplies (off: ignored and reported as label-from-image)"},
	// CA rollover and expiry warnings (package rotation).
	{"ca-rotate-fraction", "CRANK_CA_ROTATE_FRACTION", "0.8", "start a CA rollover by itself after this fraction of the CA's lifetime (0 < f < 1)"},
	{"ca-rotate-timeout", "CRANK_CA_ROTATE_TIMEOUT", "24h", "longest the overlap waits for services before promoting anyway; the old CA is retired on evidence only"},
	{"ca-rotate-interval", "CRANK_CA_ROTATE_INTERVAL", "5s", "how often the CA rollover looks at its progress (and for a `controller ca rotate` request)"},
	{"expiry-warn", "CRANK_EXPIRY_WARN", "720h,168h,24h", "log a WARN when the CA is this close to expiry, once per threshold"},
	// Swarm mode (package swarm).
	{"orchestrator", "CRANK_ORCHESTRATOR", "compose", "compose (containers, shared certs volume), swarm (services, certificates as swarm secrets) or auto (swarm when the controller runs as a swarm task on a manager)"},
	{"swarm-ca-dir", "CRANK_SWARM_CA_DIR", "/run/crank-ca", "swarm mode: working copy of the CA, restored from its sealed backup in the swarm; mount a tmpfs here"},
	{"swarm-ca-kek", "CRANK_SWARM_CA_KEK", "/run/secrets/crank-ca-kek", "swarm mode: key-encryption key (a swarm secret of at least 32 random bytes) that seals the CA's backup"},
}

// parseConfig reads flags from args and variables from getenv. Every error
// names the flag and the variable, so a bad compose file is easy to fix.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	vals, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return Config{}, err
	}
	p := parser{vals: vals}
	cfg := p.core()
	p.levels(&cfg)
	p.rotation(&cfg)
	p.swarm(&cfg)
	p.checkPaths(cfg)
	return cfg, p.err
}

// parseFlags parses args over the environment's values and returns each
// setting's raw string by flag name.
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (map[string]*string, error) {
	fs := flag.NewFlagSet("controller", flag.ContinueOnError)
	fs.SetOutput(stderr)
	vals := map[string]*string{}
	for _, d := range flagDefs {
		def := d.def
		if v := getenv(d.env); v != "" {
			def = v
		}
		vals[d.name] = fs.String(d.name, def, fmt.Sprintf("%s (env %s, default %q)", d.usage, d.env, d.def))
	}
	fs.Usage = func() {
		writeUsage(stderr)
		fmt.Fprintln(stderr, "\nflags of run:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, flagHelp
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	return vals, nil
}

// core reads where the controller runs and what it issues.
func (p *parser) core() Config {
	cfg := Config{
		DockerHost:    p.str("docker-host"),
		CertsRoot:     p.nonEmpty("certs-root"),
		StateDir:      p.nonEmpty("state-dir"),
		Environment:   reconcile.Environment(p.oneOf("environment", string(reconcile.Development), string(reconcile.Production))),
		Listen:        p.str("listen"),
		Resync:        p.duration("resync", time.Second),
		Workers:       p.intRange("workers", 1, 64),
		LogFormat:     p.oneOf("log-format", "tint", "json"),
		LogLevel:      p.level("log-level"),
		Project:       p.str("project"),
		TrustDomain:   p.nonEmpty("trust-domain"),
		KeyAlgorithm:  p.keyAlgorithm("key-algorithm"),
		LeafLifetime:  p.duration("leaf-lifetime", time.Minute),
		CALifetime:    p.duration("ca-lifetime", 2*time.Minute), // short only for tests and demos of rotation
		RenewFraction: p.fraction("renew-fraction"),
		Shutdown:      p.duration("shutdown-timeout", time.Second),
		ListenMTLS:    p.str("listen-mtls"),
		PprofListen:   p.loopback("pprof-listen"),
		OperatorDir:   p.str("operator-dir"),
		Watchdog:      p.duration("watchdog-interval", 100*time.Millisecond),
	}
	if cfg.OperatorDir == "" {
		cfg.OperatorDir = filepath.Join(cfg.StateDir, "operator")
	}
	return cfg
}

// levels reads the security-level policy and the remediation ladder.
func (p *parser) levels(cfg *Config) {
	cfg.Mode = reconcile.Mode(p.oneOf("mode", string(reconcile.Enforce), string(reconcile.Observe)))
	cfg.ProbeInterval = p.duration("probe-interval", time.Second)
	cfg.RestartBudget = p.intRange("restart-budget", 0, 100)
	cfg.RestartBackoff = p.duration("restart-backoff", time.Second)
	cfg.StartGrace = p.duration("start-grace", 0)
	cfg.ReloadGrace = p.duration("reload-grace", time.Second)
	cfg.ActionInterval = p.duration("action-interval", 0)
	cfg.ProductionMinimum = p.level3("production-min-level")
	cfg.Quarantine = p.labels("quarantine-labels")
	cfg.TrustImageLabels = p.oneOf("trust-image-labels", "false", "true") == "true"
}

// rotation reads the CA rollover and expiry warnings (package rotation).
func (p *parser) rotation(cfg *Config) {
	cfg.CARotateFraction = p.fraction("ca-rotate-fraction")
	cfg.CARotateTimeout = p.duration("ca-rotate-timeout", time.Minute)
	cfg.CARotateInterval = p.duration("ca-rotate-interval", 100*time.Millisecond)
	cfg.ExpiryWarn = p.thresholds("expiry-warn")
}

// swarm reads the orchestrator and swarm mode's paths.
func (p *parser) swarm(cfg *Config) {
	cfg.Orchestrator = p.oneOf("orchestrator", orchestratorCompose, orchestratorSwarm, orchestratorAuto)
	cfg.SwarmCADir = p.nonEmpty("swarm-ca-dir")
	cfg.SwarmCAKEK = p.nonEmpty("swarm-ca-kek")
}

// checkPaths refuses combinations that would put a private key in the
// shared volume, however the paths are spelt, or a leaf that outlives its
// CA.
func (p *parser) checkPaths(cfg Config) {
	if p.err == nil && overlaps(cfg.CertsRoot, cfg.StateDir) {
		p.fail("certs-root", fmt.Errorf("%s and --state-dir %s overlap: the CA key must never be in the shared volume", cfg.CertsRoot, cfg.StateDir))
	}
	if p.err == nil && overlaps(cfg.CertsRoot, cfg.OperatorDir) {
		p.fail("operator-dir", fmt.Errorf("%s overlaps --certs-root %s: the operator's key must never be in the shared volume", cfg.OperatorDir, cfg.CertsRoot))
	}
	if p.err == nil && cfg.LeafLifetime >= cfg.CALifetime {
		p.fail("leaf-lifetime", fmt.Errorf("%s must be shorter than --ca-lifetime %s", cfg.LeafLifetime, cfg.CALifetime))
	}
}

// overlaps reports whether one directory is the other or inside it.
// Symlinks are resolved where the paths exist.
func overlaps(a, b string) bool {
	clean := func(p string) string {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Clean(p)
	}
	a, b = clean(a), clean(b)
	inside := func(child, parent string) bool {
		rel, err := filepath.Rel(parent, child)
		return err == nil && (rel == "." || (rel != ".." && !strings.HasPrefix(rel, "../")))
	}
	return inside(a, b) || inside(b, a)
}

// parser accumulates the first error while reading values, so parseConfig
// reads as a plain list of fields.
type parser struct {
	vals map[string]*string
	err  error
}

func (p *parser) fail(name string, err error) {
	if p.err != nil {
		return
	}
	env := ""
	for _, d := range flagDefs {
		if d.name == name {
			env = d.env
		}
	}
	p.err = fmt.Errorf("invalid --%s (env %s): %w", name, env, err)
}

func (p *parser) str(name string) string { return strings.TrimSpace(*p.vals[name]) }

// loopback reads an optional listen address that must be on loopback:
// what it serves shows the process's insides to whoever connects.
func (p *parser) loopback(name string) string {
	v := p.str(name)
	if v == "" {
		return ""
	}
	host, _, err := net.SplitHostPort(v)
	if err != nil {
		p.fail(name, err)
		return ""
	}
	if ip, err := netip.ParseAddr(host); host != "localhost" && (err != nil || !ip.IsLoopback()) {
		p.fail(name, fmt.Errorf("%q is not a loopback address (127.0.0.1, ::1 or localhost)", host))
	}
	return v
}

func (p *parser) nonEmpty(name string) string {
	v := p.str(name)
	if v == "" {
		p.fail(name, errors.New("must not be empty"))
	}
	return v
}

func (p *parser) oneOf(name string, allowed ...string) string {
	v := strings.ToLower(p.str(name))
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	p.fail(name, fmt.Errorf("%q is not one of %s", v, strings.Join(allowed, ", ")))
	return ""
}

func (p *parser) duration(name string, atLeast time.Duration) time.Duration {
	d, err := time.ParseDuration(p.str(name))
	if err != nil {
		p.fail(name, err)
		return 0
	}
	if d < atLeast {
		p.fail(name, fmt.Errorf("%s is shorter than the minimum %s", d, atLeast))
	}
	return d
}

func (p *parser) intRange(name string, lo, hi int) int {
	n, err := strconv.Atoi(p.str(name))
	if err != nil {
		p.fail(name, err)
		return 0
	}
	if n < lo || n > hi {
		p.fail(name, fmt.Errorf("%d is outside %d-%d", n, lo, hi))
	}
	return n
}

func (p *parser) fraction(name string) float64 {
	f, err := strconv.ParseFloat(p.str(name), 64)
	if err != nil {
		p.fail(name, err)
		return 0
	}
	if f <= 0 || f >= 1 {
		p.fail(name, fmt.Errorf("%v is not strictly between 0 and 1", f))
	}
	return f
}

func (p *parser) level(name string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(p.str(name))); err != nil {
		p.fail(name, err)
	}
	return l
}

func (p *parser) level3(name string) probe.Level {
	l, err := probe.ParseLevel(p.str(name))
	if err == nil && l == probe.Down {
		err = errors.New("down is not a level to require")
	}
	if err != nil {
		p.fail(name, err)
	}
	return l
}

func (p *parser) labels(name string) map[string]string {
	out := map[string]string{}
	v := p.str(name)
	if v == "" {
		return out
	}
	for _, kv := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok || k == "" || strings.HasPrefix(k, "com.docker.compose.") {
			p.fail(name, fmt.Errorf("%q: want key=value pairs separated by commas, not com.docker.compose.* labels", kv))
			return nil
		}
		out[k] = val
	}
	return out
}

func (p *parser) keyAlgorithm(name string) certs.KeyAlgorithm {
	a, err := certs.ParseKeyAlgorithm(p.str(name))
	if err != nil {
		p.fail(name, err)
	}
	return a
}

// thresholds parses --expiry-warn.
func (p *parser) thresholds(name string) []time.Duration {
	ts, err := rotation.ParseThresholds(p.str(name))
	if err != nil {
		p.fail(name, err)
	}
	return ts
}

// flagHelp is returned when -h was asked for; it is not an error to report.
var flagHelp = flag.ErrHelp

// lookupEnv is os.Getenv; a variable so tests can pass their own.
var lookupEnv = os.Getenv
