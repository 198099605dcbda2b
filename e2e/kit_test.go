//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"

	"github.com/crank-platform/crank-mtls-controller/rotation"
)

// Real-engine scenarios of the Python service kit (servicekit/python) on
// Debian's python3, httpx, uvicorn and FastAPI. The services run
// e2e/testdata/kitapp/app.py: with the kit (its uvicorn helper and adaptive
// client, which follow the bundle, labelled crank.security.reload=watch)
// or, side by side under the same controller, with the certificates loaded
// once at start, the restart-based path the kit replaces. Restarts come from
// the engine's events; every service is sampled over mTLS every 200ms by the
// test itself, and workers call their platform every 200ms. Figures are
// logged with the prefix "MEASURE:".
//
// Run them alone with: go test -tags e2e ./e2e -run TestKit -v
// The first run on a machine builds the Python image (scripts/python-image.sh).

// A leaf renewal costs a kit service nothing: no restart, no failed request
// from the test or from the worker, and the new leaf is served within
// seconds. The restart-based stack beside it pays a restart per service.
func TestKitLeafRenewal(t *testing.T) {
	t.Parallel()
	f := kitNew(t)
	// 1m leaves renewed at 2/3: the first renewal about 40s after issue,
	// the next one 40s later, after the window below has closed.
	f.start(t, "CRANK_LEAF_LIFETIME=1m")
	paths := f.kitStacks(t)
	svcs := kitByService(paths)
	old := map[string]string{}
	for name := range svcs {
		old[name] = f.generation(name)
	}

	since := time.Now()
	s := f.sample(t, svcs)
	var settled time.Time
	WaitFor(t, 2*time.Minute, func() (bool, string) {
		for _, p := range paths {
			for _, c := range []*Container{p.platform, p.worker} {
				if !s.servedSince(c.Service, old[c.Service], since) {
					return false, c.Service + ": renewed leaf not served yet"
				}
				if p.name == "kit" {
					if len(f.findLogs(t, reloadedByItself(c.Service, since))) == 0 {
						return false, c.Service + ": the controller has not seen the reload yet"
					}
				} else if ok, why := f.settledRestartPath(t, c); !ok {
					return false, why
				}
			}
		}
		settled = time.Now()
		return true, ""
	})
	f.waitCallsFlow(t, paths, settled, 5)
	until := time.Now()
	s.Stop()

	for _, p := range paths {
		r := f.measure(t, s, p, since, until)
		logRotation(t, "leaf-renewal", p, r, until.Sub(since))
		if p.name == "kit" {
			assertNoCost(t, "leaf renewal", r)
		} else if r.restarts == 0 {
			t.Errorf("restart path: got no restarts for a renewal of certificates loaded once, want the controller to restart them")
		}
	}
}

// A CA rollover (overlap, reissue, retire) over the same two stacks: the kit
// services take every phase's bundle by themselves, so the rollover
// restarts none of them and no request to or from them fails; they end
// trusting only the new CA. The restart-based stack is restarted per phase.
func TestKitCARollover(t *testing.T) {
	t.Parallel()
	f := kitNew(t)
	// Leaves long enough that no renewal falls inside the rollover.
	f.start(t, "CRANK_LEAF_LIFETIME=30m", "CRANK_CA_LIFETIME=2h")
	paths := f.kitStacks(t)
	svcs := kitByService(paths)
	first := map[string]*kitBundle{}
	for name := range svcs {
		b, err := kitLoadBundle(f.certs, name)
		if err != nil {
			t.Fatal(err)
		}
		first[name] = b
	}
	old := f.mustCAStatus(t)
	if old.Phase != rotation.PhaseIdle {
		t.Fatalf("got phase %s before the rotate request, want idle", old.Phase)
	}

	since := time.Now()
	s := f.sample(t, svcs)
	f.rotate(t)
	var phases []string
	WaitFor(t, rtRolloverDeadline, func() (bool, string) {
		st, err := f.caStatus()
		if err != nil {
			return false, err.Error()
		}
		if len(phases) == 0 || phases[len(phases)-1] != string(st.Phase) {
			phases = append(phases, string(st.Phase))
		}
		done := st.Phase == rotation.PhaseIdle && st.ActiveCA.Fingerprint != old.ActiveCA.Fingerprint && st.Retiring == 0 && st.Successor == nil
		return done, fmt.Sprintf("phases %v: %s; waiting for %v", phases, st.Message, st.WaitingFor)
	})
	idle := time.Since(since)
	var settled time.Time
	WaitFor(t, lvDeadline, func() (bool, string) {
		for _, p := range paths {
			for _, c := range []*Container{p.platform, p.worker} {
				if p.name == "restart" {
					if ok, why := f.settledRestartPath(t, c); !ok {
						return false, why
					}
					continue
				}
				if ok, why := f.checkMTLS(t, c); !ok {
					return false, c.Service + ": " + why
				}
				if rep, err := f.serviceStatus(c.Service); err != nil || len(rep.Containers) != 1 || rep.Containers[0].NeedsRestart {
					return false, fmt.Sprintf("%s: controller status %v (%v): want one container, no restart needed", c.Service, rep.Containers, err)
				}
			}
		}
		settled = time.Now()
		return true, ""
	})
	f.waitCallsFlow(t, paths, settled, 5)
	until := time.Now()
	s.Stop()
	t.Logf("MEASURE: kit ca-rollover: rotate request -> idle with the new CA = %s (phases %v); -> every process on the final bundle = %s",
		idle.Round(100*time.Millisecond), phases, settled.Sub(since).Round(100*time.Millisecond))

	for _, p := range paths {
		r := f.measure(t, s, p, since, until)
		logRotation(t, "ca-rollover", p, r, until.Sub(since))
		if p.name == "kit" {
			assertNoCost(t, "CA rollover", r)
		}
		// A client certificate of the retired CA must be refused now: the
		// process dropped the old CA from what it trusts.
		for _, c := range []*Container{p.platform, p.worker} {
			now, err := kitLoadBundle(f.certs, c.Service)
			if err != nil {
				t.Fatal(err)
			}
			cfg := now.cfg.Clone()
			cfg.Certificates = first[c.Service].cfg.Certificates
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := f.h.HTTPGet(ctx, "https://"+net.JoinHostPort(f.h.IP(t, c.ID, f.net), "8443")+"/health", cfg)
			cancel()
			refused := err != nil
			t.Logf("MEASURE: kit ca-rollover: %s refuses a client certificate of the retired CA: %v", c.Service, refused)
			if !refused && p.name == "kit" {
				t.Errorf("%s: got status %d for a client certificate of the retired CA, want the handshake refused", c.Service, res.Status)
			}
		}
	}
	for _, line := range f.findLogs(t, func(l lvLog) bool { return strings.Contains(l.Msg, "proceeding anyway") }) {
		t.Errorf("got a phase that ended on its timeout, want every phase to end on evidence: %s", line)
	}
}

// kitBootBatch is how many new services are started at once; four batches,
// each started once the one before answers, make the 20 first boots.
const kitBootBatch, kitBoots = 5, 20

// New kit services started the moment they are created, as compose does,
// race the controller's first issue. The kit waits for a complete bundle
// before it listens, so the first request any of them answers is mTLS with
// its bundle's certificate; nothing is ever served plain; and the
// controller, seeing the served certificate is the bundle's, restarts none.
func TestKitFirstBoot(t *testing.T) {
	t.Parallel()
	f := kitNew(t)
	f.start(t, "CRANK_LEAF_LIFETIME=30m", "CRANK_CA_LIFETIME=2h")
	var all []*Container
	var firstAnswer []time.Duration
	for batch := 0; batch < kitBoots/kitBootBatch; batch++ {
		var cs []*Container
		started := map[string]time.Time{}
		firsts := map[string]kitFirst{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range kitBootBatch {
			name := fmt.Sprintf("boot-%02d", batch*kitBootBatch+i+1)
			c := f.kitService(t, name, WithLabels(kitReloadWatch), CreateOnly())
			started[name] = time.Now()
			f.h.Start(t, c)
			cs = append(cs, c)
			wg.Add(1)
			go func() {
				defer wg.Done()
				first := f.firstAnswer(c, time.Now().Add(lvDeadline))
				mu.Lock()
				firsts[c.Service] = first
				mu.Unlock()
			}()
		}
		wg.Wait()
		for _, c := range cs {
			fa := firsts[c.Service]
			switch {
			case fa.plain:
				t.Errorf("%s: answered plain HTTP on 8080 before or instead of mTLS, want only mTLS", c.Service)
			case fa.err != "":
				t.Errorf("%s: first request got %s, want 200 over mTLS with its bundle's certificate", c.Service, fa.err)
			default:
				firstAnswer = append(firstAnswer, fa.at.Sub(started[c.Service]))
			}
		}
		all = append(all, cs...)
	}

	// The controller's side: each service probed at mtls after its start
	// grace, serving its bundle's certificate, with nothing to do. That
	// probe is the one that restarts a service which booted without its
	// certificates or kept older ones.
	// raced: the process started before its bundle was written (the race a
	// first boot without the kit can lose); waited: the kit waited for it.
	raced, waited, restarted := 0, 0, 0
	for _, c := range all {
		st := f.waitControllerSettled(t, c, true)
		if f.issuedAt(t, c.Service).After(startedAt(t, f.h.Inspect(t, c.ID))) {
			raced++
		}
		for _, tr := range st.Transitions {
			if tr.To == "plain" || tr.To == "tls" {
				t.Errorf("%s: the controller saw it at %s (%s), want never below mtls", c.Service, tr.To, tr.Cause)
			}
		}
		restarts := f.engineCount(t, c, events.ActionRestart, time.Time{}, time.Now())
		dies := f.engineCount(t, c, events.ActionDie, time.Time{}, time.Now())
		if restarts != 0 || dies != 0 || st.Remediation.Attempts != 0 {
			restarted++
			t.Errorf("%s: got %d restarts, %d process exits and %d remediation attempts, want none; events: %s",
				c.Service, restarts, dies, st.Remediation.Attempts, f.events.summary(c.ID))
		}
		if strings.Contains(f.h.Logs(t, c.ID), "after waiting") {
			waited++
		}
	}
	slices.Sort(firstAnswer)
	if len(firstAnswer) > 0 {
		t.Logf("MEASURE: kit first-boot: %d/%d new services answered their first request over mTLS with their bundle's certificate; %d restarted; %d started before their bundle was written, %d waited for it; start -> first mTLS answer median %s, max %s; load %s",
			len(firstAnswer), kitBoots, restarted, raced, waited,
			firstAnswer[len(firstAnswer)/2].Round(10*time.Millisecond), firstAnswer[len(firstAnswer)-1].Round(10*time.Millisecond), loadAverage())
	}
	if len(firstAnswer) != kitBoots {
		t.Errorf("got %d of %d services with certificates from the first request, want all", len(firstAnswer), kitBoots)
	}
}

// kitFirst is what a new service answered first.
type kitFirst struct {
	at    time.Time
	err   string // "" when the first request got 200 over mTLS with the bundle's leaf
	plain bool   // port 8080 accepted a connection before that
}

// firstAnswer polls a container every 20ms from its start: until its
// HTTPS port accepts a connection, its plain port must not; then one
// request with the bundle's client certificate is its first request.
func (f *kitFixture) firstAnswer(c *Container, deadline time.Time) kitFirst {
	var first kitFirst
	for time.Now().Before(deadline) {
		if f.accepts(c.IP, "8080") {
			first.plain = true
		}
		if !f.accepts(c.IP, "8443") {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		first.at = time.Now()
		b, err := kitLoadBundle(f.certs, c.Service)
		if err != nil {
			first.err = "no bundle on disk while it listens: " + err.Error()
			return first
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := f.h.HTTPGet(ctx, "https://"+net.JoinHostPort(c.IP, "8443")+"/health", b.cfg)
		switch {
		case err != nil:
			first.err = err.Error()
		case res.Status != 200:
			first.err = fmt.Sprintf("status %d", res.Status)
		case res.ServerCertSHA256() != b.tlsFP:
			first.err = "a certificate other than its bundle's"
		}
		return first
	}
	first.err = "never listened on 8443"
	return first
}

// accepts reports whether ip:port accepts a TCP connection now.
func (f *kitFixture) accepts(ip, port string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	conn, err := f.h.dialTestNetwork(ctx, "tcp", net.JoinHostPort(ip, port))
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Without a bundle, a kit service in production exits at once with an
// error naming what is missing; in development it starts, degraded to
// plain, with one WARN naming it.
func TestKitWithoutCertificates(t *testing.T) {
	t.Parallel()
	h := H(t)
	h.KitImage(t)
	network := h.NewNetwork(t)
	certs := t.TempDir()
	const missing = "tls.crt: missing; tls.key: missing; client.crt: missing; client.key: missing; ca.crt: missing"
	for _, env := range []string{"production", "development"} {
		name := "nocerts-" + env
		if err := os.MkdirAll(filepath.Join(certs, name), 0o755); err != nil {
			t.Fatal(err)
		}
		// No compose labels and no controller: nobody issues a bundle.
		c := h.RunKitService(t, WithName(h.Project(t)+"-"+name), WithNetwork(network), WithCertsMount(certs, "/certs"),
			WithEnv("SERVICE_NAME="+name, "CRANK_ENVIRONMENT="+env, "CERT_TIMEOUT=2"))
		switch env {
		case "production":
			var ins container.InspectResponse
			took := WaitFor(t, 30*time.Second, func() (bool, string) {
				ins = h.Inspect(t, c.ID)
				return !ins.State.Running, "still running: " + ins.State.Status
			})
			logs := h.Logs(t, c.ID)
			want := "ERROR:    crank_security: " + name + ": no complete mTLS bundle in /certs/" + name + " after 2s: " + missing
			t.Logf("MEASURE: kit no-certs production: exit code %d after %s; log: %s", ins.State.ExitCode, took.Round(100*time.Millisecond), strings.TrimSpace(logs))
			if ins.State.ExitCode != 1 || !strings.Contains(logs, want) || !strings.Contains(logs, "production") {
				t.Errorf("production without certificates: got exit code %d and log\n%s\nwant exit code 1 and a line containing %q", ins.State.ExitCode, logs, want)
			}
			if strings.Contains(logs, "Traceback") {
				t.Errorf("production without certificates: got a traceback, want one clear error line:\n%s", logs)
			}
		case "development":
			var res *HTTPResult
			WaitFor(t, 30*time.Second, func() (bool, string) {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				var err error
				res, err = h.HTTPGet(ctx, c.HTTPURL("/health"), nil)
				if err != nil {
					return false, err.Error()
				}
				return res.Status == 200, fmt.Sprintf("status %d", res.Status)
			})
			logs := h.Logs(t, c.ID)
			var warns []string
			for line := range strings.Lines(logs) {
				if strings.HasPrefix(line, "WARNING") {
					warns = append(warns, strings.TrimSpace(line))
				}
			}
			t.Logf("MEASURE: kit no-certs development: running, plain HTTP /health %d, %d WARN: %v", res.Status, len(warns), warns)
			want := name + ": no complete mTLS bundle in /certs/" + name + " after 2s: " + missing + "; continuing at plain"
			if len(warns) != 1 || !strings.Contains(warns[0], want) {
				t.Errorf("development without certificates: got WARN lines %q, want exactly one containing %q", warns, want)
			}
			if ins := h.Inspect(t, c.ID); !ins.State.Running || ins.RestartCount != 0 {
				t.Errorf("development without certificates: got running=%v restarts=%d, want it up", ins.State.Running, ins.RestartCount)
			}
		}
	}
}
