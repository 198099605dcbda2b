package probe

import (
	"reflect"
	"strings"
	"testing"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

type containerOpt func(*dockerwatch.Container)

func withLabel(k, v string) containerOpt {
	return func(c *dockerwatch.Container) { c.Labels[k] = v }
}
func withEnv(k, v string) containerOpt {
	return func(c *dockerwatch.Container) { c.Env[k] = v }
}
func withExposed(proto string, ports ...int) containerOpt {
	return func(c *dockerwatch.Container) {
		for _, p := range ports {
			c.ExposedPorts = append(c.ExposedPorts, dockerwatch.Port{Port: p, Proto: proto})
		}
	}
}
func withNetwork(name, v4, v6 string) containerOpt {
	return func(c *dockerwatch.Container) { c.Networks[name] = dockerwatch.Network{IPAddress: v4, IPv6: v6} }
}

// newContainer is email-parser on network "crank" at 172.20.0.5.
func newContainer(opts ...containerOpt) dockerwatch.Container {
	c := dockerwatch.Container{
		ID: "abc123", Name: "crank-email-parser-1", Service: "email-parser",
		Labels: map[string]string{}, Env: map[string]string{},
		Networks: map[string]dockerwatch.Network{"crank": {IPAddress: "172.20.0.5"}},
	}
	for _, f := range opts {
		f(&c)
	}
	return c
}

func TestTargetFor(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		c      dockerwatch.Container
		shared []string
		// want is the whole Target; ignored when wantErr is set.
		want Target
		// wantErr: substrings the error must contain ("" = no error).
		wantErr []string
	}{
		"should prefer labels over env and exposed ports": {
			c: newContainer(withLabel(LabelHTTPSPort, "9443"), withLabel(LabelHTTPPort, "9080"), withLabel(LabelHealthPath, "/healthz?deep=1"),
				withEnv(EnvHTTPSPort, "8443"), withEnv(EnvHTTPPort, "8080"), withExposed("tcp", 443, 80)),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HTTPSPort: 9443, HTTPPort: 9080, HealthPath: "/healthz?deep=1"},
		},
		"should prefer env over exposed ports": {
			c:    newContainer(withEnv(EnvHTTPSPort, "7443"), withEnv(EnvHTTPPort, "7080"), withExposed("tcp", 443, 80)),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HTTPSPort: 7443, HTTPPort: 7080, HealthPath: "/health"},
		},
		"should resolve each port on its own": {
			c:    newContainer(withLabel(LabelHTTPSPort, "9443"), withEnv(EnvHTTPPort, "7080"), withExposed("tcp", 443, 80)),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HTTPSPort: 9443, HTTPPort: 7080, HealthPath: "/health"},
		},
		"should ignore an env value that is not a port and fall back to exposed ports": {
			c:    newContainer(withEnv(EnvHTTPSPort, "tcp://10.0.0.1:443"), withExposed("tcp", 8443)),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HTTPSPort: 8443, HealthPath: "/health"},
		},
		"should guess 8443 as https and 8080 as http from exposed ports": {
			c:    newContainer(withExposed("tcp", 8080, 8443)),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HTTPSPort: 8443, HTTPPort: 8080, HealthPath: "/health"},
		},
		"should guess any port ending in 443 as https and the lowest other port as http": {
			c:    newContainer(withExposed("tcp", 9000, 5000, 9443), withExposed("udp", 53)),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HTTPSPort: 9443, HTTPPort: 5000, HealthPath: "/health"},
		},
		"should prefer 80 over other http candidates and ignore udp": {
			c:    newContainer(withExposed("tcp", 3000, 80, 443), withExposed("udp", 8443)),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HTTPSPort: 443, HTTPPort: 80, HealthPath: "/health"},
		},
		"should leave both ports 0 when nothing says where to probe": {
			c:    newContainer(),
			want: Target{Service: "email-parser", Addrs: []string{"172.20.0.5"}, HealthPath: "/health"},
		},
		"should use the service label as the expected server name": {
			c:    newContainer(withLabel("crank.security.service", "email-parser-2"), withExposed("tcp", 8443)),
			want: Target{Service: "email-parser-2", Addrs: []string{"172.20.0.5"}, HTTPSPort: 8443, HealthPath: "/health"},
		},
		"should keep only addresses on the shared networks": {
			c:      newContainer(withNetwork("backend", "10.0.1.2", "fd00::2"), withNetwork("public", "10.9.9.9", ""), withExposed("tcp", 443)),
			shared: []string{"backend", "crank", "absent"},
			want:   Target{Service: "email-parser", Addrs: []string{"10.0.1.2", "fd00::2", "172.20.0.5"}, HTTPSPort: 443, HealthPath: "/health"},
		},
		"should use every address in network-name order when no shared networks are given": {
			c:    newContainer(withNetwork("backend", "10.0.1.2", "fd00::2"), withNetwork("public", "10.9.9.9", "")),
			want: Target{Service: "email-parser", Addrs: []string{"10.0.1.2", "fd00::2", "172.20.0.5", "10.9.9.9"}, HealthPath: "/health"},
		},
		"should return no addresses when the container shares no network with us": {
			c:      newContainer(),
			shared: []string{"other"},
			want:   Target{Service: "email-parser", HealthPath: "/health"},
		},
		"should reject an https-port label that is not a number": {
			c:       newContainer(withLabel(LabelHTTPSPort, "https")),
			wantErr: []string{LabelHTTPSPort, `"https"`},
		},
		"should reject an http-port label out of range": {
			c:       newContainer(withLabel(LabelHTTPPort, "70000")),
			wantErr: []string{LabelHTTPPort, `"70000"`},
		},
		"should reject a health-path label that could change the host": {
			c:       newContainer(withLabel(LabelHealthPath, "//evil.example/health")),
			wantErr: []string{LabelHealthPath, `"//evil.example/health"`},
		},
		"should reject a health-path label that is a full URL": {
			c:       newContainer(withLabel(LabelHealthPath, "http://evil.example/health")),
			wantErr: []string{LabelHealthPath},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := TargetFor(tc.c, tc.shared)
			if len(tc.wantErr) > 0 {
				if err == nil {
					t.Fatalf("got target %+v, want an error containing %q", got, tc.wantErr)
				}
				for _, s := range tc.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("got error %q, want it to contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
