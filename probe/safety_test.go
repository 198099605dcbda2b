package probe

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// overEachProtocol names the server options of the protocols the prober
// speaks, so each safety property is proven over both.
var overEachProtocol = map[string][]serverOpt{
	"over HTTP/1.1": nil,
	"over HTTP/2":   {withH2Only()},
}

func TestProbeDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	for name, proto := range overEachProtocol {
		t.Run("should stop at the redirect "+name, func(t *testing.T) {
			t.Parallel()
			var landed atomic.Int32
			mux := http.NewServeMux()
			mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/landing", http.StatusFound) })
			mux.HandleFunc("/landing", func(http.ResponseWriter, *http.Request) { landed.Add(1) })
			port, _ := p.tlsServer(t, append(proto, withHandler(mux))...)

			res := p.prober().Probe(t.Context(), newTarget(withHTTPS(port)))
			if got := res.HTTPSWithClientCert.Status; got != http.StatusFound {
				t.Errorf("got status %d, want %d (the redirect itself)", got, http.StatusFound)
			}
			if n := landed.Load(); n != 0 {
				t.Errorf("got %d requests to the redirect target, want 0", n)
			}
			if got, want := res.Reasons(), []Reason{HealthNotOK}; res.Level != MTLS || !slices.Equal(got, want) {
				t.Errorf("got %s %s, want %s %s", res.Level, reasonsString(got), MTLS, reasonsString(want))
			}
		})
	}
}

func TestProbeCapsTheBody(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	for name, proto := range overEachProtocol {
		t.Run("should read a bounded prefix of an endless body "+name, func(t *testing.T) {
			t.Parallel()
			// An endless body: an uncapped reader would hang until the step's
			// deadline and fail.
			port, _ := p.tlsServer(t, append(proto, withHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				buf := make([]byte, 32<<10)
				for r.Context().Err() == nil {
					if _, err := w.Write(buf); err != nil {
						return
					}
				}
			})))...)
			const timeout = 5 * time.Second
			res := p.prober(withMaxBody(1<<10), withTimeout(timeout)).Probe(t.Context(), newTarget(withHTTPS(port)))
			if !res.HTTPSWithClientCert.OK || res.Level != MTLS {
				t.Errorf("got level %s, step %+v, want mtls with an OK step", res.Level, res.HTTPSWithClientCert)
			}
			if res.Duration >= timeout {
				t.Errorf("got duration %v, want well under the %v timeout: the body was not capped", res.Duration, timeout)
			}
		})
	}
}

// TestProbeHandshakesAfreshEveryStep: HTTP/2 multiplexes streams over one
// connection, which must not let the step without a client certificate ride
// on the connection that presented one, nor one probe on another's.
func TestProbeHandshakesAfreshEveryStep(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	for name, proto := range overEachProtocol {
		t.Run("should open a connection and complete a handshake per step "+name, func(t *testing.T) {
			t.Parallel()
			var hellos, done atomic.Int32
			port, _ := p.tlsServer(t, append(proto, withClientAuth(tls.NoClientCert),
				withHandshakeHooks(func() { hellos.Add(1) }, func() { done.Add(1) }))...)
			pr := p.prober()
			for range 2 {
				if res := pr.Probe(t.Context(), newTarget(withHTTPS(port))); res.Level != TLS {
					t.Fatalf("got level %s (%+v), want %s", res.Level, res.HTTPSWithClientCert, TLS)
				}
			}
			// Two probes of two steps each.
			if got, want := [2]int32{hellos.Load(), done.Load()}, [2]int32{4, 4}; got != want {
				t.Errorf("got %d ClientHellos and %d completed handshakes, want %d and %d", got[0], got[1], want[0], want[1])
			}
		})
	}
}

func TestProbeBoundsConcurrency(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	const limit, probes = 3, 12
	var (
		mu            sync.Mutex
		inFlight, max int
		gate          = make(chan struct{})
		open          sync.Once
	)
	// Every handshake waits at the ClientHello until limit handshakes are in
	// flight at once, which proves the prober uses its full concurrency;
	// a broken bound would let more through while the first ones wait.
	hello := func() {
		mu.Lock()
		inFlight++
		max = maxInt(max, inFlight)
		n := inFlight
		mu.Unlock()
		if n >= limit {
			open.Do(func() { close(gate) })
		}
		select {
		case <-gate:
		case <-time.After(10 * time.Second): // a deadline, so a broken test fails instead of hanging
		}
	}
	done := func() { mu.Lock(); inFlight--; mu.Unlock() }
	port, _ := p.tlsServer(t, withClientAuth(tls.NoClientCert), withHandshakeHooks(hello, done))

	pr := p.prober(withConcurrency(limit))
	var wg sync.WaitGroup
	levels := make([]Level, probes)
	for i := range probes {
		wg.Go(func() { levels[i] = pr.Probe(t.Context(), newTarget(withHTTPS(port))).Level })
	}
	wg.Wait()
	for i, l := range levels {
		if l != TLS {
			t.Errorf("probe %d: got level %s, want %s", i, l, TLS)
		}
	}
	if max != limit {
		t.Errorf("got %d handshakes in flight at most, want exactly %d", max, limit)
	}
}

// TestProbeSemaphoreIsExact proves the bound without timing: in a synctest
// bubble, synctest.Wait returns once every probe is blocked, either holding
// a slot or waiting for one.
func TestProbeSemaphoreIsExact(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const limit, probes = 3, 12
		pr := New(Options{Concurrency: limit})
		var holding atomic.Int32
		release := make(chan struct{})
		pr.acquired = func() { holding.Add(1); <-release }
		ctx, cancel := context.WithCancel(t.Context())
		var wg sync.WaitGroup
		for range probes {
			wg.Go(func() { pr.Probe(ctx, newTarget(withHTTPS(1))) })
		}
		synctest.Wait()
		if got := holding.Load(); got != limit {
			t.Errorf("got %d probes holding a slot, want %d", got, limit)
		}
		// Cancel first so the released probes return without touching the
		// network.
		cancel()
		close(release)
		wg.Wait()
	})
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

func TestSetCredentialsSwapsSafely(t *testing.T) {
	t.Parallel()
	oldCA, newCA := newPKI(t), newPKI(t)
	oldPort, _ := oldCA.tlsServer(t)
	newPort, _ := newCA.tlsServer(t)
	pr := oldCA.prober()
	level := func(port int) Level { return pr.Probe(t.Context(), newTarget(withHTTPS(port))).Level }
	if got, want := [2]Level{level(oldPort), level(newPort)}, [2]Level{MTLS, Plain}; got != want {
		t.Fatalf("before the swap: got %v, want %v", got, want)
	}

	// Swap while probes run, for the race detector.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { level(newPort) })
	}
	pr.SetCredentials(newCA.client, newCA.roots)
	wg.Wait()

	if got, want := [2]Level{level(oldPort), level(newPort)}, [2]Level{Plain, MTLS}; got != want {
		t.Errorf("after the swap: got %v, want %v", got, want)
	}
}

func TestProbeIPv6(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	port, _ := p.tlsServer(t, withListen("[::1]:0"))
	res := p.prober().Probe(t.Context(), newTarget(withHTTPS(port), withAddrs("::1")))
	if res.Level != MTLS {
		t.Errorf("got level %s (%+v), want %s", res.Level, res.HTTPSWithClientCert, MTLS)
	}
	if got, want := res.HTTPSWithClientCert.Addr, fmt.Sprintf("[::1]:%d", port); got != want {
		t.Errorf("got addr %q, want %q", got, want)
	}
}

func TestProbeBracketsIPv6(t *testing.T) {
	t.Parallel()
	port := closedPort(t)
	res := New(Options{Timeout: 5 * time.Second}).Probe(t.Context(), newTarget(withHTTP(port), withAddrs("::1")))
	if got, want := res.HTTP.Addr, fmt.Sprintf("[::1]:%d", port); got != want {
		t.Errorf("got addr %q, want %q", got, want)
	}
}

func TestProbeWithCanceledContextMeasuresNothing(t *testing.T) {
	t.Parallel()
	p := newPKI(t)
	port, _ := p.tlsServer(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if res := p.prober().Probe(ctx, newTarget(withHTTPS(port))); res.Level != Down {
		t.Errorf("got level %s, want %s", res.Level, Down)
	}
}

// Verification is never skipped outside tests; this test enforces it.
func TestSourceNeverSkipsVerification(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(src), "Insecure"+"SkipVerify") {
			t.Errorf("%s mentions the skip-verify option, want it nowhere outside tests", f)
		}
	}
}
