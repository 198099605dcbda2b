//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/events"
)

// Measuring what a rotation costs (kit_test.go): the test's own mTLS
// client, which samples every service as a peer or the prober would, and
// the per-path figures logged as MEASURE lines.

// kitBundle is one generation of a service's bundle, read through the
// generation directory so its files always belong together.
type kitBundle struct {
	gen   string
	cfg   *tls.Config // client cert, ca.crt as the only roots, ServerName = the service
	tlsFP string      // fingerprint of the generation's tls.crt
}

func kitLoadBundle(certsRoot, service string) (*kitBundle, error) {
	dir := filepath.Join(certsRoot, service)
	gen, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil {
		return nil, err
	}
	base := filepath.Join(dir, gen)
	pair, err := tls.LoadX509KeyPair(filepath.Join(base, "client.crt"), filepath.Join(base, "client.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(base, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", base)
	}
	leaves, err := rtReadCerts(filepath.Join(base, "tls.crt"))
	if err != nil {
		return nil, err
	}
	return &kitBundle{gen: gen,
		cfg:   &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, ServerName: service},
		tlsFP: rtFingerprint(leaves[0])}, nil
}

// kitSampler makes one mTLS request to every service each kitCallInterval,
// as a peer or the controller's prober would: a fresh handshake, a client
// certificate and trust read from the bundle, reloaded when ..data moves.
// It is a measurement loop, not a wait.
type kitSampler struct {
	f    *kitFixture
	mu   sync.Mutex
	recs map[string][]kitSample
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// kitSample is one request.
type kitSample struct {
	at      time.Time
	err     string // "" when it got 200 over mTLS
	gen     string // the generation on disk the client used
	want    string // fingerprint of that generation's tls.crt
	current bool   // served that tls.crt
}

func (f *kitFixture) sample(t *testing.T, svcs map[string]*Container) *kitSampler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &kitSampler{f: f, recs: map[string][]kitSample{}, stop: cancel}
	t.Cleanup(s.Stop)
	for name, c := range svcs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			var b *kitBundle
			ip := c.IP
			tick := time.NewTicker(kitCallInterval)
			defer tick.Stop()
			for {
				var rec kitSample
				rec, b, ip = s.one(name, c, b, ip)
				s.mu.Lock()
				s.recs[name] = append(s.recs[name], rec)
				s.mu.Unlock()
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
	return s
}

// one makes one request with the bundle on disk now (reusing b when the
// generation has not moved); the address is looked up again after a
// failure, since a restarted container may come back with another.
func (s *kitSampler) one(name string, c *Container, b *kitBundle, ip string) (kitSample, *kitBundle, string) {
	rec := kitSample{at: time.Now()}
	if b == nil || s.f.generation(name) != b.gen {
		// The generation read may be replaced (and removed) while it is
		// read; a real client keeps what it has then, and so does this one.
		nb, err := kitLoadBundle(s.f.certs, name)
		if err != nil {
			nb, err = kitLoadBundle(s.f.certs, name)
		}
		switch {
		case err == nil:
			b = nb
		case b == nil:
			rec.err = "loading the bundle: " + err.Error()
			return rec, b, ip
		}
	}
	rec.gen, rec.want = b.gen, b.tlsFP
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.f.h.HTTPGet(ctx, "https://"+net.JoinHostPort(ip, "8443")+"/health", b.cfg)
	switch {
	case err != nil:
		rec.err = err.Error()
	case res.Status != 200:
		rec.err = fmt.Sprintf("status %d", res.Status)
	default:
		rec.current = res.ServerCertSHA256() == b.tlsFP
	}
	if rec.err != "" {
		if ins, err := s.f.inspectName(c.ID); err == nil {
			if ep := ins.NetworkSettings.Networks[s.f.net]; ep != nil && ep.IPAddress != "" {
				ip = ep.IPAddress
			}
		}
	}
	return rec, b, ip
}

// Stop ends the sampling; safe to call twice.
func (s *kitSampler) Stop() {
	s.stop()
	s.wg.Wait()
}

// servedSince reports whether a request after since was answered with the
// leaf of a generation other than old.
func (s *kitSampler) servedSince(name, old string, since time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs[name] {
		if !r.at.Before(since) && r.err == "" && r.current && r.gen != old {
			return true
		}
	}
	return false
}

// kitFigures are one service's samples in a window.
type kitFigures struct {
	samples, failed int
	// down is the time not answering mTLS: for each failed sample, the
	// time since the one before; longest is the longest such stretch.
	down, longest time.Duration
	lastErr       string
	// servedAfter: the longest time from the first sample that found a new
	// leaf on disk to the first that got it served; -1 if one never was,
	// 0 if no leaf changed.
	servedAfter time.Duration
}

func (s *kitSampler) figures(name string, since, until time.Time) kitFigures {
	s.mu.Lock()
	defer s.mu.Unlock()
	var fig kitFigures
	var prev, newLeafAt time.Time
	var stretch time.Duration
	want, pending := "", false
	for _, r := range s.recs[name] {
		if r.at.Before(since) || r.at.After(until) {
			prev = r.at
			continue
		}
		fig.samples++
		if r.want != "" && r.want != want {
			if want != "" && !pending {
				newLeafAt, pending = r.at, true
			}
			want = r.want
		}
		if r.err != "" {
			fig.failed++
			fig.lastErr = r.err
			if !prev.IsZero() {
				stretch += r.at.Sub(prev)
				fig.down += r.at.Sub(prev)
				fig.longest = max(fig.longest, stretch)
			}
		} else {
			stretch = 0
			if pending && r.current {
				fig.servedAfter = max(fig.servedAfter, r.at.Sub(newLeafAt))
				pending = false
			}
		}
		prev = r.at
	}
	if pending {
		fig.servedAfter = -1
	}
	return fig
}

// kitRotation is what one rotation cost one path.
type kitRotation struct {
	restarts, dies           int
	failed, samples          int           // the test's mTLS requests to the platform and worker
	down                     time.Duration // platform + worker not answering mTLS
	platformDown, workerDown time.Duration
	callsFailed, callsOK     int
	callErrors               []string
	servedAfter              []string // per service: new leaf on disk -> served
	restartTimes             []string // per restart: stop (kill -> die), start -> answering mTLS
}

// restartTimes splits each restart of c in [since, until] into the time
// the old process took to stop (first kill to die, from the engine's
// events) and the new one took to answer mTLS (start to the first
// successful sample after it).
func (f *kitFixture) restartTimes(s *kitSampler, c *Container, since, until time.Time) []string {
	f.events.mu.Lock()
	var kill time.Time
	var out []string
	var starts []time.Time
	for _, m := range f.events.msgs {
		at := time.Unix(0, m.TimeNano)
		if m.Actor.ID != c.ID || at.Before(since) || at.After(until) {
			continue
		}
		switch m.Action {
		case events.ActionKill:
			if kill.IsZero() {
				kill = at
			}
		case events.ActionDie:
			if !kill.IsZero() {
				out = append(out, fmt.Sprintf("%s stop=%s", c.Service, at.Sub(kill).Round(100*time.Millisecond)))
				kill = time.Time{}
			}
		case events.ActionStart:
			starts = append(starts, at)
		}
	}
	f.events.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, start := range starts {
		answered := "never"
		for _, r := range s.recs[c.Service] {
			if r.at.After(start) && r.err == "" {
				answered = r.at.Sub(start).Round(100 * time.Millisecond).String()
				break
			}
		}
		if i < len(out) {
			out[i] += " start->mtls=" + answered
		}
	}
	return out
}

// measure adds up what the rotation in [since, until] cost a path.
func (f *kitFixture) measure(t *testing.T, s *kitSampler, p *kitPath, since, until time.Time) kitRotation {
	t.Helper()
	var r kitRotation
	for _, c := range []*Container{p.platform, p.worker} {
		r.restarts += f.engineCount(t, c, events.ActionRestart, since, until)
		r.dies += f.engineCount(t, c, events.ActionDie, since, until)
		fig := s.figures(c.Service, since, until)
		r.failed += fig.failed
		r.samples += fig.samples
		r.down += fig.down
		if c == p.platform {
			r.platformDown = fig.down
		} else {
			r.workerDown = fig.down
		}
		after := "never"
		if fig.servedAfter >= 0 {
			after = fig.servedAfter.Round(100 * time.Millisecond).String()
		}
		r.servedAfter = append(r.servedAfter, c.Service+"="+after)
		if fig.failed > 0 {
			t.Logf("%s: %d of %d samples failed, longest outage %s, last error: %s",
				c.Service, fig.failed, fig.samples, fig.longest.Round(100*time.Millisecond), fig.lastErr)
		}
		r.restartTimes = append(r.restartTimes, f.restartTimes(s, c, since, until)...)
	}
	calls := f.calls(t, p.worker, since, until)
	r.callsOK, r.callsFailed, r.callErrors = calls.ok, calls.failed, calls.errors
	return r
}

// logRotation writes the MEASURE line of one path for one rotation.
func logRotation(t *testing.T, rotation string, p *kitPath, r kitRotation, took time.Duration) {
	t.Helper()
	t.Logf("MEASURE: kit %s: %-7s restarts=%d (process exits %d) mtls-requests failed=%d/%d time-without-mtls=%s (platform %s, worker %s) worker-calls failed=%d/%d served-new-bundle-after=%v window=%s load=%s",
		rotation, p.name, r.restarts, r.dies, r.failed, r.samples, r.down.Round(100*time.Millisecond),
		r.platformDown.Round(100*time.Millisecond), r.workerDown.Round(100*time.Millisecond),
		r.callsFailed, r.callsOK+r.callsFailed, r.servedAfter, took.Round(100*time.Millisecond), loadAverage())
	if len(r.restartTimes) > 0 {
		t.Logf("MEASURE: kit %s: %-7s restarts: %v", rotation, p.name, r.restartTimes)
	}
	for _, e := range r.callErrors {
		t.Logf("%s: worker call error: %s", p.name, e)
	}
}

// assertNoCost fails unless the rotation cost the kit path nothing.
func assertNoCost(t *testing.T, rotation string, r kitRotation) {
	t.Helper()
	if r.restarts != 0 || r.dies != 0 {
		t.Errorf("%s: got %d restarts and %d process exits of kit services, want none", rotation, r.restarts, r.dies)
	}
	if r.failed != 0 {
		t.Errorf("%s: got %d of %d mTLS requests to kit services failed, want 0", rotation, r.failed, r.samples)
	}
	if r.callsFailed != 0 || r.callsOK == 0 {
		t.Errorf("%s: got %d failed and %d successful kit worker calls, want 0 failed and calls flowing; errors %v",
			rotation, r.callsFailed, r.callsOK, r.callErrors)
	}
}
