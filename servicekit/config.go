package servicekit

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Environment variables read by FromEnv.
const (
	EnvCertsDir    = "CRANK_CERTS_DIR"
	EnvEnvironment = "CRANK_ENVIRONMENT"
)

// DefaultPoll is how often a Source and Wait look at ..data: a readlink,
// cheap enough to do twice a second, and well inside the 2 s in which a
// new bundle must reach new handshakes.
const DefaultPoll = 500 * time.Millisecond

// defaultRoots are the certs roots services mount, in the order they are
// tried; the seed's services mix both.
var defaultRoots = []string{"/certs", "/etc/certs"}

// Config says where a service's bundle is and how to treat it.
type Config struct {
	// Service is the service's name: the bundle dir under a certs root,
	// and the service in logs.
	Service string
	// Dir is the bundle directory. Empty means Locate's rules, applied
	// again on every look until a bundle appears there, because a volume
	// may be filled after the process starts (FromEnv leaves it empty).
	Dir string
	// Environment decides what an incomplete bundle does. Default
	// development.
	Environment Environment
	// Logger receives the kit's few lines. Default slog.Default().
	Logger *slog.Logger
	// Poll is how often ..data is looked at. Default DefaultPoll.
	Poll time.Duration
	// LoadOnce makes a Source read the bundle when it opens and on Reload
	// only, never on its own: the behaviour of a server such as uvicorn,
	// which loads its certificates once at start.
	LoadOnce bool
	// Require is the files a generation must hold for a Source to take
	// it. Nil means the files present when the Source opens, so that a
	// reload never loses what the service started with.
	Require FileSet
	// Now is the clock certificates are checked against. Default time.Now.
	Now func() time.Time

	// getenv is what FromEnv read; Locate rules use it when Dir is empty.
	getenv func(string) string
}

// FromEnv builds a Config for service from CRANK_ENVIRONMENT and
// CRANK_CERTS_DIR (see Locate), read through getenv (os.Getenv in a
// service). An invalid value fails here, at start.
func FromEnv(service string, getenv func(string) string) (Config, error) {
	if err := checkServiceName(service); err != nil {
		return Config{}, err
	}
	env, err := ParseEnvironment(getenv(EnvEnvironment))
	if err != nil {
		return Config{}, err
	}
	return Config{Service: service, Environment: env, getenv: getenv}, nil
}

// BundleDir is the directory the bundle is read from now: Dir, or where
// Locate's rules point.
func (c Config) BundleDir() string {
	if c.Dir != "" {
		return c.Dir
	}
	getenv := c.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	return Locate(c.Service, getenv)
}

func (c Config) withDefaults() Config {
	if c.Environment == "" {
		c.Environment = Development
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// checkServiceName rejects a name that is not one path component.
func checkServiceName(service string) error {
	if service == "" || service == "." || service == ".." || strings.ContainsAny(service, "/\\\x00") {
		return fmt.Errorf("service name %q: want one path component", service)
	}
	return nil
}

// Locate returns the bundle directory of service. A directory holds a
// bundle when it has ..data or any bundle file, as the Python kit decides.
//
//   - CRANK_CERTS_DIR set: that directory itself if it holds a bundle, as
//     when a volume subpath is mounted there; otherwise it is a root, and
//     the bundle is <root>/<service>;
//   - otherwise the first of /certs/<service> and /etc/certs/<service>
//     that holds a bundle, else the first that exists, else
//     /certs/<service>.
func Locate(service string, getenv func(string) string) string {
	return locate(service, getenv(EnvCertsDir), lookDir)
}

// dirState is what Locate needs to know about a candidate directory.
type dirState int

const (
	dirAbsent dirState = iota
	dirExists
	dirHasBundle
)

// locate is Locate as a pure function of look.
func locate(service, certsDir string, look func(dir string) dirState) string {
	if certsDir != "" {
		if look(certsDir) == dirHasBundle {
			return certsDir
		}
		return filepath.Join(certsDir, service)
	}
	candidates := make([]string, len(defaultRoots))
	for i, root := range defaultRoots {
		candidates[i] = filepath.Join(root, service)
	}
	for _, want := range []dirState{dirHasBundle, dirExists} {
		for _, c := range candidates {
			if look(c) == want {
				return c
			}
		}
	}
	return candidates[0]
}

// lookDir classifies dir. An entry named ..data or like a bundle file
// counts, even a dangling link: it is the bundle's place, whatever state
// it is in.
func lookDir(dir string) dirState {
	for _, name := range append([]string{dataLink}, fileOrder...) {
		if _, err := os.Lstat(filepath.Join(dir, name)); err == nil {
			return dirHasBundle
		}
	}
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return dirExists
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// Unreadable: it is there, and the read will say why.
		return dirExists
	}
	return dirAbsent
}
