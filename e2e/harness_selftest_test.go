//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/api/types/volume"

	"github.com/crank-platform/crank-mtls-controller/internal/testpki"
)

// These tests prove the harness itself against the real engine, so a
// failing product e2e test can't be blamed on it.

// selftestHealth is the testservice's GET /health body.
type selftestHealth struct {
	Service     string `json:"service"`
	Mode        string `json:"mode"`
	Level       string `json:"level"`
	CertsAtBoot bool   `json:"certs_at_boot"`
	Peer        string `json:"peer"`
}

// selftestGetHealth fetches and decodes /health; for use inside WaitFor.
func selftestGetHealth(h *Harness, url string, tlsCfg *tls.Config) (selftestHealth, *HTTPResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out selftestHealth
	res, err := h.HTTPGet(ctx, url, tlsCfg)
	if err != nil {
		return out, nil, err
	}
	return out, res, json.Unmarshal(res.Body, &out)
}

func TestHarnessPlainOnlyServiceAnswersOverItsIP(t *testing.T) {
	t.Parallel()
	h := H(t)
	net := h.NewNetwork(t)
	svc := h.RunService(t, WithService("plain"), WithMode("plain-only"), WithNetwork(net))

	var got selftestHealth
	WaitFor(t, 15*time.Second, func() (bool, string) {
		var err error
		if got, _, err = selftestGetHealth(h, svc.HTTPURL("/health"), nil); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	want := selftestHealth{Service: "plain", Mode: "plain-only", Level: "plain"}
	if got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
	labels := h.Inspect(t, svc.ID).Config.Labels
	if labels[LabelComposeProject] != h.Project(t) || labels[LabelComposeService] != "plain" || labels[LabelRun] != h.RunID {
		t.Errorf("got labels %v, want compose project %s, service plain, run %s", labels, h.Project(t), h.RunID)
	}
}

func TestHarnessAdaptiveServiceServesMTLSFromMountedBundle(t *testing.T) {
	t.Parallel()
	h := H(t)
	ca := testpki.NewCA(t, testpki.WithCommonName("e2e selftest CA"))
	dir := t.TempDir()
	server := selftestLeaf(t, ca, "mtls-svc", x509.ExtKeyUsageServerAuth)
	client := selftestLeaf(t, ca, "selftest-client", x509.ExtKeyUsageClientAuth)
	for name, data := range map[string][]byte{
		"tls.crt": server.CertPEM, "tls.key": server.KeyPEM, "client.crt": client.CertPEM, "client.key": client.KeyPEM, "ca.crt": ca.CertPEM,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatalf("writing %s: %v", name, err)
		}
	}
	net := h.NewNetwork(t)
	svc := h.RunService(t, WithService("mtls-svc"), WithNetwork(net),
		WithCertsMount(dir, "/certs/mtls-svc"), WithHealthcheck(300*time.Millisecond))

	pair, err := tls.X509KeyPair(client.CertPEM, client.KeyPEM)
	if err != nil {
		t.Fatalf("loading client pair: %v", err)
	}
	withCert := &tls.Config{RootCAs: ca.Pool(), ServerName: "mtls-svc", Certificates: []tls.Certificate{pair}}
	var got selftestHealth
	var res *HTTPResult
	WaitFor(t, 15*time.Second, func() (bool, string) {
		got, res, err = selftestGetHealth(h, svc.HTTPSURL("/health"), withCert)
		if err != nil {
			return false, err.Error()
		}
		return true, ""
	})
	if want := (selftestHealth{Service: "mtls-svc", Mode: "adaptive", Level: "mtls", CertsAtBoot: true, Peer: "selftest-client"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}

	noCert := &tls.Config{RootCAs: ca.Pool(), ServerName: "mtls-svc"}
	if _, _, err := selftestGetHealth(h, svc.HTTPSURL("/health"), noCert); err == nil {
		t.Errorf("got a response without a client cert, want the handshake refused")
	}
	if _, _, err := selftestGetHealth(h, svc.HTTPURL("/health"), nil); err == nil {
		t.Errorf("got a response on the plain port at level mtls, want it closed")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bootRes, err := h.HTTPGet(ctx, svc.HTTPSURL("/bootinfo"), withCert)
	if err != nil {
		t.Fatalf("GET /bootinfo: %v", err)
	}
	var boot struct {
		ServedCert string   `json:"served_cert_sha256"`
		FilesSeen  []string `json:"files_seen_at_boot"`
	}
	if err := json.Unmarshal(bootRes.Body, &boot); err != nil {
		t.Fatalf("decoding /bootinfo %q: %v", bootRes.Body, err)
	}
	if boot.ServedCert != res.ServerCertSHA256() || len(boot.FilesSeen) != 5 {
		t.Errorf("got bootinfo %+v, want served %s and 5 files", boot, res.ServerCertSHA256())
	}

	// The compose-style HEALTHCHECK in a scratch image presents the client cert.
	WaitFor(t, 15*time.Second, func() (bool, string) {
		st := h.Inspect(t, svc.ID).State.Health
		if st == nil {
			return false, "no health state"
		}
		if st.Status == container.Healthy {
			return true, ""
		}
		var last string
		if n := len(st.Log); n > 0 {
			last = st.Log[n-1].Output
		}
		return false, st.Status + ": " + last
	})
	if logs := h.Logs(t, svc.ID); !strings.Contains(logs, `"reason":"full bundle present"`) {
		t.Errorf("got logs %s, want the level decision logged with its reason", logs)
	}
}

func TestHarnessCrashOnStartExitsNonZero(t *testing.T) {
	t.Parallel()
	h := H(t)
	svc := h.RunService(t, WithMode("crash-on-start"))
	WaitFor(t, 15*time.Second, func() (bool, string) {
		st := h.Inspect(t, svc.ID).State
		return st.Status == container.StateExited && st.ExitCode == 1, "status " + string(st.Status)
	})
}

func TestHarnessVolumeFilesRoundTrip(t *testing.T) {
	t.Parallel()
	h := H(t)
	vol := h.NewVolume(t)
	want := []byte("not a certificate\n")
	h.WriteVolumeFile(t, vol, "svc/tls.crt", want, 0o600)
	if got := h.ReadVolumeFile(t, vol, "svc/tls.crt"); string(got) != string(want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := h.TryReadVolumeFile(t, vol, "svc/absent"); err == nil {
		t.Errorf("got no error reading an absent file, want one")
	}
}

func TestHarnessRefusesAddressesOutsideTestNetworks(t *testing.T) {
	t.Parallel()
	h := H(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, url := range []string{"http://127.0.0.1:9/", "http://localhost:9/", "http://192.0.2.1:80/"} {
		if _, err := h.HTTPGet(ctx, url, nil); err == nil || !strings.Contains(err.Error(), "refusing to dial") {
			t.Errorf("HTTPGet(%s): got %v, want a refusal", url, err)
		}
	}
}

func TestHarnessCleanupRemovesEverythingOfATest(t *testing.T) {
	t.Parallel()
	h := H(t)
	var scope string
	t.Run("makes resources", func(t *testing.T) {
		scope = h.Project(t)
		net, vol := h.NewNetwork(t), h.NewVolume(t)
		h.RunService(t, WithService("a"), WithMode("plain-only"), WithNetwork(net), WithCertsMount(vol, "/certs"))
		h.RunService(t, CreateOnly(), WithNetwork(net))
		h.WriteVolumeFile(t, vol, "a/x", []byte("x"), 0o644)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f := filters.NewArgs(filters.Arg("label", LabelScope+"="+scope))
	cs, err := h.Docker.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	nets, err := h.Docker.NetworkList(ctx, network.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vols, err := h.Docker.VolumeList(ctx, volume.ListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs)+len(nets)+len(vols.Volumes) != 0 {
		t.Errorf("got %d containers, %d networks, %d volumes left with %s, want none",
			len(cs), len(nets), len(vols.Volumes), scope)
	}
}

// selftestLeaf issues a leaf of ca for cn; its SANs cover cn and the
// "localhost" the in-container healthcheck dials.
func selftestLeaf(t *testing.T, ca *testpki.CA, cn string, usage x509.ExtKeyUsage) *testpki.Pair {
	t.Helper()
	return ca.Issue(t, testpki.WithCommonName(cn), testpki.WithDNSNames(cn, "localhost"), testpki.WithExtKeyUsage(usage))
}

// TestControllerImageSmoke proves StartController's wiring (socket, volumes,
// network, project label) with the real controller image. Its name avoids
// "Harness" on purpose: `-run Harness` must not depend on the controller.
func TestControllerImageSmoke(t *testing.T) {
	t.Parallel()
	h := H(t)
	net := h.NewNetwork(t)
	ctrl := h.StartController(t, ControllerOptions{Network: net, Env: []string{"CRANK_LOG_FORMAT=json"}})
	healthz := "http://" + ctrl.IP + ":9090/healthz"
	WaitFor(t, 20*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		res, err := h.HTTPGet(ctx, healthz, nil)
		if err != nil {
			return false, err.Error()
		}
		return res.Status == 200, fmt.Sprintf("status %d: %s", res.Status, res.Body)
	})
	if got := h.Inspect(t, ctrl.ID).Config.Labels[LabelComposeProject]; got != h.Project(t) {
		t.Errorf("got controller project label %q, want %q", got, h.Project(t))
	}
}
