package probe

import (
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// Labels a container may set to tell the prober where its endpoints are.
const (
	LabelHTTPSPort  = "crank.security.https-port"
	LabelHTTPPort   = "crank.security.http-port"
	LabelHealthPath = "crank.security.health-path"
	// labelService mirrors reconcile.LabelService, which this package cannot
	// import (reconcile uses probe).
	labelService = "crank.security.service"
)

// Environment variables of the container's config that name its ports; the
// convention of our services (and of cmd/testservice).
const (
	EnvHTTPSPort = "SERVICE_HTTPS_PORT"
	EnvHTTPPort  = "SERVICE_PORT"
)

// TargetEnv lists the environment variables TargetFor reads from a
// container: all of its environment a caller needs to keep.
func TargetEnv() []string { return []string{EnvHTTPSPort, EnvHTTPPort} }

// DefaultHealthPath is probed when no label says otherwise.
const DefaultHealthPath = "/health"

// Target is one container endpoint set to probe.
type Target struct {
	// Service is the expected server name: the served certificate must
	// carry it. It is used only as SNI and for verification, never dialed.
	Service string
	// Addrs are the container's own IPs (v4 or v6), tried in order; the
	// first that accepts a connection wins, per step. Hostnames are refused.
	Addrs []string
	// HTTPSPort and HTTPPort: 0 = none.
	HTTPSPort int
	HTTPPort  int
	// HealthPath is the path requested; "" means DefaultHealthPath.
	HealthPath string
	// ExpectedFingerprint is the SHA-256 (hex) of the leaf in the bundle on
	// disk; "" skips served-cert-not-current.
	ExpectedFingerprint string
}

// TargetFor works out where to probe c. It is pure.
//
// Each port is resolved on its own, first match wins:
//  1. the label (LabelHTTPSPort, LabelHTTPPort);
//  2. the environment variable (EnvHTTPSPort, EnvHTTPPort) in the container's
//     config; a value that is not a port is ignored, since the variable is
//     only a convention and other images may use the name differently;
//  3. the exposed TCP ports, by heuristic: 443, 8443 and any port ending in
//     443 (4443, 9443, 10443) are HTTPS, lowest first; HTTP is 80, else 8080,
//     else the lowest remaining exposed port. The guess can be wrong (a
//     database port is probed as HTTP and simply does not answer); set the
//     labels to be exact.
//
// The health path is LabelHealthPath or DefaultHealthPath. Service is the
// crank.security.service label, else c.Service, else c.Name; callers that
// resolve the service name themselves overwrite it.
//
// Addrs are c's IPs on the networks named in shared (the controller's own
// networks) when shared is non-empty, else all of them, in network-name
// order. An empty Addrs is not an error here: Probe reports it as
// no-addresses, which tells the operator to attach a network.
//
// A label with a bad value is an error naming the label and the value.
func TargetFor(c dockerwatch.Container, shared []string) (Target, error) {
	t := Target{Service: firstNonEmpty(c.Labels[labelService], c.Service, c.Name), HealthPath: DefaultHealthPath}
	var err error
	if t.HTTPSPort, err = labelPort(c.Labels, LabelHTTPSPort); err != nil {
		return Target{}, err
	}
	if t.HTTPPort, err = labelPort(c.Labels, LabelHTTPPort); err != nil {
		return Target{}, err
	}
	if p, ok := c.Labels[LabelHealthPath]; ok {
		if err := checkHealthPath(p); err != nil {
			return Target{}, fmt.Errorf("label %s=%q: %w", LabelHealthPath, p, err)
		}
		t.HealthPath = p
	}
	if t.HTTPSPort == 0 {
		t.HTTPSPort = envPort(c.Env, EnvHTTPSPort)
	}
	if t.HTTPPort == 0 {
		t.HTTPPort = envPort(c.Env, EnvHTTPPort)
	}
	guessHTTPS, guessHTTP := guessPorts(c.ExposedPorts)
	if t.HTTPSPort == 0 {
		t.HTTPSPort = guessHTTPS
	}
	if t.HTTPPort == 0 && guessHTTP != t.HTTPSPort {
		t.HTTPPort = guessHTTP
	}
	t.Addrs = addrsFor(c, shared)
	return t, nil
}

func labelPort(labels map[string]string, name string) (int, error) {
	v, ok := labels[name]
	if !ok {
		return 0, nil
	}
	p, err := parsePort(v)
	if err != nil {
		return 0, fmt.Errorf("label %s=%q: %w", name, v, err)
	}
	return p, nil
}

func envPort(env map[string]string, name string) int {
	p, err := parsePort(env[name])
	if err != nil {
		return 0
	}
	return p
}

func parsePort(s string) (int, error) {
	p, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || p < 1 || p > 65535 {
		return 0, fmt.Errorf("want a port number 1-65535")
	}
	return p, nil
}

// checkHealthPath accepts an absolute path with an optional query, nothing
// that could change the scheme or host of the request.
func checkHealthPath(p string) error {
	u, err := url.Parse(p)
	switch {
	case err != nil:
		return fmt.Errorf("not a URL path: %w", err)
	case !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || u.Scheme != "" || u.Host != "" || u.Fragment != "":
		return fmt.Errorf("want an absolute path such as /health")
	}
	return nil
}

func isHTTPSPort(p int) bool { return p == 443 || p == 8443 || p%1000 == 443 }

// guessPorts applies the exposed-port heuristic documented on TargetFor.
func guessPorts(ports []dockerwatch.Port) (https, http int) {
	var tcp []int
	for _, p := range ports {
		if (p.Proto == "" || p.Proto == "tcp") && p.Port > 0 && p.Port <= 65535 {
			tcp = append(tcp, p.Port)
		}
	}
	slices.Sort(tcp)
	var other []int
	for _, p := range tcp {
		if isHTTPSPort(p) {
			if https == 0 {
				https = p
			}
			continue
		}
		other = append(other, p)
	}
	switch {
	case slices.Contains(other, 80):
		http = 80
	case slices.Contains(other, 8080):
		http = 8080
	case len(other) > 0:
		http = other[0]
	}
	return https, http
}

// addrsFor lists c's IPs on the shared networks (all networks if shared is
// empty) in network-name order, v4 before v6 per network, without
// duplicates.
func addrsFor(c dockerwatch.Container, shared []string) []string {
	names := make([]string, 0, len(c.Networks))
	for n := range c.Networks {
		if len(shared) == 0 || slices.Contains(shared, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []string
	for _, n := range names {
		for _, ip := range []string{c.Networks[n].IPAddress, c.Networks[n].IPv6} {
			if ip != "" && !slices.Contains(out, ip) {
				out = append(out, ip)
			}
		}
	}
	return out
}

// validate checks t before anything is dialed and returns the parsed
// addresses. Only literal unicast IPs are accepted: a hostname would be
// resolved by someone else's DNS, and 0.0.0.0 or :: would reach the
// controller's own host.
func (t Target) validate() ([]netip.Addr, error) {
	if t.Service == "" {
		return nil, fmt.Errorf("target has no service name")
	}
	if t.HTTPSPort < 0 || t.HTTPSPort > 65535 || t.HTTPPort < 0 || t.HTTPPort > 65535 {
		return nil, fmt.Errorf("ports %d (HTTPS) and %d (HTTP): want 0 (none) or 1-65535", t.HTTPSPort, t.HTTPPort)
	}
	if t.HealthPath != "" {
		if err := checkHealthPath(t.HealthPath); err != nil {
			return nil, fmt.Errorf("health path %q: %w", t.HealthPath, err)
		}
	}
	addrs := make([]netip.Addr, 0, len(t.Addrs))
	for _, s := range t.Addrs {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("address %q: want an IP literal, hostnames are refused: %w", s, err)
		}
		if a.IsUnspecified() || a.IsMulticast() {
			return nil, fmt.Errorf("address %q: want a unicast container IP", s)
		}
		addrs = append(addrs, a.Unmap())
	}
	return addrs, nil
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
