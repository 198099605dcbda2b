package dockerwatch

import (
	"strings"
	"time"
)

// Compose labels that give a container its identity. They are written by both
// docker-compose v1 and the compose v2 plugin.
const (
	LabelComposeProject = "com.docker.compose.project"
	LabelComposeService = "com.docker.compose.service"
)

// Container is the controller's own view of a Docker container. It is built
// from the Engine API's inspect response at this package's boundary; nothing
// outside dockerwatch sees the SDK's types.
type Container struct {
	ID   string
	Name string // without the leading "/"

	// Project and Service come from the compose labels. Service falls back to
	// Name for containers that compose did not create.
	Project string
	Service string

	Image   string
	ImageID string // the image's content digest, "sha256:..."
	// Labels are the container's labels as the engine reports them, which
	// include every LABEL of its image. ImageLabels are the image's own,
	// so a caller can tell which values the image supplied.
	Labels      map[string]string
	ImageLabels map[string]string
	Env         map[string]string // Config.Env split at the first "="
	Hostname    string
	User        string // Config.User, e.g. "1000:1000" or "app"; "" means root

	State        State
	Health       string // "", "starting", "healthy" or "unhealthy"
	Created      time.Time
	StartedAt    time.Time // zero if never started
	FinishedAt   time.Time // zero if never stopped
	ExitCode     int
	RestartCount int
	// RestartPolicy is the HostConfig restart policy name: "", "no",
	// "always", "unless-stopped" or "on-failure".
	RestartPolicy string
	// HealthStartPeriod is the healthcheck's start period; zero if none.
	HealthStartPeriod time.Duration

	Networks     map[string]Network // keyed by network name
	NetworkMode  string             // HostConfig.NetworkMode, e.g. "bridge", "container:<id>"
	Mounts       []Mount
	ExposedPorts []Port
}

// State is the container's lifecycle state as the engine reports it.
type State string

// The states the engine reports.
const (
	StateCreated    State = "created"
	StateRunning    State = "running"
	StatePaused     State = "paused"
	StateRestarting State = "restarting"
	StateRemoving   State = "removing"
	StateExited     State = "exited"
	StateDead       State = "dead"
)

// Network is one network endpoint of a container.
type Network struct {
	NetworkID string
	IPAddress string // IPv4, may be empty
	IPv6      string // may be empty
	Aliases   []string
}

// Mount is one mount of a container.
type Mount struct {
	Type        string // "volume", "bind", "tmpfs", ...
	Name        string // volume name, for Type "volume" (anonymous volumes too)
	Source      string
	Destination string
	RW          bool
}

// Port is an exposed container port.
type Port struct {
	Port  int
	Proto string // "tcp" or "udp"
}

// DNSNames returns every DNS name the container answers to, deduplicated and
// in a stable order: compose service, container name, network aliases,
// hostname, and "localhost". Names that are not valid DNS names (e.g. compose
// v1's "crank_web_1") are dropped. So is a hostname the engine assigned (the
// short container ID): nobody addresses a container by it, and it changes on
// every recreate, so keeping it would make every rebuild reissue the bundle
// after the new process had already loaded the old one.
func (c Container) DNSNames() []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if n == "" || seen[n] || !isDNSName(n) {
			return
		}
		seen[n] = true
		names = append(names, n)
	}
	add(c.Service)
	add(c.Name)
	for _, nn := range sortedKeys(c.Networks) {
		for _, a := range c.Networks[nn].Aliases {
			add(a)
		}
	}
	if !c.autoHostname() {
		add(c.Hostname)
	}
	add("localhost")
	return names
}

// autoHostname reports whether the hostname is the one Docker assigns when
// none is configured: the first 12 characters of the container ID.
func (c Container) autoHostname() bool {
	return len(c.ID) >= 12 && c.Hostname == c.ID[:12]
}

// IPs returns the container's own addresses on every network, in network-name
// order. These are the only addresses the prober may contact.
func (c Container) IPs() []string {
	var ips []string
	for _, nn := range sortedKeys(c.Networks) {
		n := c.Networks[nn]
		if n.IPAddress != "" {
			ips = append(ips, n.IPAddress)
		}
		if n.IPv6 != "" {
			ips = append(ips, n.IPv6)
		}
	}
	return ips
}

// isDNSName reports whether n is a syntactically valid DNS name: dot-separated
// labels of 1-63 letters, digits or hyphens, not starting or ending with a
// hyphen, 253 characters at most.
func isDNSName(n string) bool {
	if len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// ShortID is the 12-character form of a container ID that `docker ps`
// shows, for logs; a shorter ID is returned whole.
func ShortID(id string) string {
	if len(id) > shortIDLen {
		return id[:shortIDLen]
	}
	return id
}
