package dockerwatch

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
)

var versionPrefix = regexp.MustCompile(`^/v[0-9.]+`)

// fakeEngine serves the few Engine API endpoints Client uses, as an API 1.41
// daemon would. "gone" is listed but no longer inspectable, as when a
// container is removed between the list and the inspect.
func fakeEngine(t *testing.T) *Client {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		path := versionPrefix.ReplaceAllString(r.URL.Path, "")
		switch {
		case path == "/_ping":
			_, _ = w.Write([]byte("OK"))
		case path == "/containers/json":
			if r.URL.Query().Get("all") != "1" {
				t.Errorf("got list without all=1, want stopped containers included")
			}
			_ = json.NewEncoder(w).Encode([]container.Summary{{ID: "c1"}, {ID: "gone"}})
		case path == "/containers/c1/json":
			_ = json.NewEncoder(w).Encode(inspectFixture(func(r *container.InspectResponse) { r.ID = "c1" }))
		case path == "/images/sha256:abc/json":
			_, _ = w.Write([]byte(`{"Id":"sha256:abc","Config":{"Labels":{"crank.security.level":"tls"}}}`))
		case strings.HasPrefix(path, "/containers/"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"No such container: gone"}`))
		default:
			t.Errorf("unexpected request %s %s", r.Method, r.URL.Path)
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	return clientOf(t, srv)
}

// clientOf is a Client of srv; both are closed when the test ends.
func clientOf(t *testing.T, srv *httptest.Server) *Client {
	t.Helper()
	t.Cleanup(srv.Close)
	c, err := New("tcp://" + strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestInspectNotFoundIsBothOurSentinelAndTheEnginesError(t *testing.T) {
	t.Parallel()
	c := fakeEngine(t)
	_, err := c.Inspect(context.Background(), "gone")
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("got errors.Is(%v, ErrNotFound) = false, want true", err)
	}
	if !cerrdefs.IsNotFound(err) {
		t.Errorf("got cerrdefs.IsNotFound(%v) = false, want true", err)
	}
}

func TestListSkipsContainersThatVanishBeforeInspect(t *testing.T) {
	t.Parallel()
	c := fakeEngine(t)
	got, err := c.List(context.Background())
	if err != nil {
		t.Fatalf("List: got error %v, want nil", err)
	}
	if len(got) != 1 || got[0].ID != "c1" || got[0].Name != "web" {
		t.Errorf("got %+v, want exactly c1 (named web)", got)
	}
	if len(got) == 1 && got[0].ImageLabels["crank.security.level"] != "tls" {
		t.Errorf("image labels: got %v, want the image's crank.security.level=tls", got[0].ImageLabels)
	}
}

func TestPingRecordsTheServerAPIVersion(t *testing.T) {
	t.Parallel()
	c := fakeEngine(t)
	if got := c.ServerAPIVersion(); got != "" {
		t.Errorf("got %q before any ping, want empty", got)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: got %v, want nil", err)
	}
	if got, want := c.ServerAPIVersion(), "1.41"; got != want {
		t.Errorf("got server API version %q, want %q", got, want)
	}
	if got, want := c.SDK().ClientVersion(), "1.41"; got != want {
		t.Errorf("got negotiated client version %q, want %q (downgraded to the daemon's)", got, want)
	}
}

func TestNewNeverPinsTheAPIVersion(t *testing.T) {
	t.Setenv("DOCKER_API_VERSION", "1.24")
	c, err := New("unix:///nonexistent.sock")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer c.Close()
	// Negotiation sets the version to the daemon's on first use; a pinned
	// client would report the pin before any request.
	if got := c.SDK().ClientVersion(); got == "1.24" {
		t.Errorf("got client version %q from DOCKER_API_VERSION, want negotiation", got)
	}
}

// KeepEnv decides what of a container's or a swarm service's environment
// the client holds, in what Inspect returns, in what Known remembers, and
// in a service.
func TestKeepEnvDropsEveryOtherVariable(t *testing.T) {
	t.Parallel()
	env := []string{"SERVICE_PORT=8080", "DB_PASSWORD=hunter2", "DSN=postgres://u:p@db/x"}
	tests := map[string]struct {
		keep []string
		want map[string]string
	}{
		"should keep everything without a list": {nil, map[string]string{"SERVICE_PORT": "8080", "DB_PASSWORD": "hunter2", "DSN": "postgres://u:p@db/x"}},
		"should keep only the variables named":  {[]string{"SERVICE_PORT", "SERVICE_HTTPS_PORT"}, map[string]string{"SERVICE_PORT": "8080"}},
		"should keep nothing when none is set":  {[]string{"SERVICE_HTTPS_PORT"}, nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Api-Version", "1.41")
				switch versionPrefix.ReplaceAllString(r.URL.Path, "") {
				case "/containers/c1/json":
					_ = json.NewEncoder(w).Encode(inspectFixture(func(r *container.InspectResponse) { r.ID, r.Config.Env = "c1", env }))
				case "/services/s1":
					_ = json.NewEncoder(w).Encode(swarm.Service{ID: "s1", Spec: swarm.ServiceSpec{
						TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Env: env}}}})
				default:
					_, _ = w.Write([]byte(`{"Id":"sha256:abc","Config":{}}`))
				}
			}))
			c := clientOf(t, srv)
			c.KeepEnv = tt.keep
			for _, look := range []func(context.Context, string) (Container, error){c.Inspect, c.Known} {
				got, err := look(context.Background(), "c1")
				if err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(got.Env, tt.want) {
					t.Errorf("got env %v, want %v", got.Env, tt.want)
				}
			}
			svc, err := c.Service(context.Background(), "s1")
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(svc.Env, tt.want) {
				t.Errorf("got service env %v, want %v", svc.Env, tt.want)
			}
		})
	}
}
