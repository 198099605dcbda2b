package servicekit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// ErrUnusableBundle is wrapped by NewSource and Reload when the bundle is
// incomplete or inconsistent.
var ErrUnusableBundle = errors.New("bundle is not usable")

// Source holds a service's current Material and replaces it when the
// controller publishes a new generation, in the manner of go-spiffe's
// X509Source. Configs built from it read Current at each handshake or
// dial, so a swap reaches new connections without a restart and leaves
// open ones alone. A Source is safe for concurrent use.
type Source struct {
	cfg     Config
	dir     string
	require FileSet
	log     *slog.Logger

	cur   atomic.Pointer[Material]
	swaps atomic.Uint64 // counts swaps; transports compare it

	mu     sync.Mutex // serializes loads and guards warned
	warned string     // the last bad generation (or error) warned about

	transports transportRegistry

	cancel context.CancelFunc
	done   chan struct{}
}

// NewSource loads the bundle and, unless cfg.LoadOnce, watches it until ctx
// ends or Close is called. The bundle must hold cfg.Require (default: what
// it holds now, at least one file) and have no problem at all; otherwise
// the error wraps ErrUnusableBundle and names each problem.
func NewSource(ctx context.Context, cfg Config) (*Source, error) {
	cfg = cfg.withDefaults()
	dir := cfg.BundleDir()
	m, err := Load(dir, cfg.Now())
	if err != nil {
		return nil, err
	}
	require := cfg.Require
	if require == nil {
		require = m.Present()
	}
	if len(require) == 0 {
		return nil, fmt.Errorf("%w: no bundle files in %s", ErrUnusableBundle, dir)
	}
	s := &Source{cfg: cfg, dir: dir, require: require, done: make(chan struct{}),
		log: cfg.Logger.With(keyService, cfg.Service, keyCertsDir, dir)}
	if err := s.acceptFirst(m); err != nil {
		return nil, err
	}
	s.cur.Store(m)
	ctx, s.cancel = context.WithCancel(ctx)
	if cfg.LoadOnce {
		close(s.done)
		return s, nil
	}
	go s.watch(ctx)
	return s, nil
}

// acceptFirst decides whether m, the bundle found at start, can be served.
// Files that are missing, unreadable or whose key is not their
// certificate's cannot: the service refuses to start, as uvicorn does with
// a bad ssl_certfile. A bundle that is merely not valid now (expired, not
// yet valid, from another CA, without the right usage) is served, with one
// WARN: peers refuse it, and the controller replaces it, which the watcher
// then takes. Refusing it would make a crash loop of what the controller
// heals in seconds.
func (s *Source) acceptFirst(m *Material) error {
	var fatal, stale []Problem
	for _, p := range m.Problems(s.require) {
		switch p.Code {
		case ProblemMissing, ProblemUnsafeFile, ProblemCorrupt, ProblemKeyMismatch:
			fatal = append(fatal, p)
		default:
			stale = append(stale, p)
		}
	}
	if len(fatal) > 0 {
		return fmt.Errorf("%w: %s, generation %s: %s", ErrUnusableBundle, s.dir, m.Generation, problemsText(fatal))
	}
	if len(stale) > 0 {
		s.log.Warn("serving a bundle that is not valid now, until a valid one replaces it: "+problemsText(stale),
			keyGeneration, m.Generation)
	}
	return nil
}

// Current is the material in use now; never nil.
func (s *Source) Current() *Material { return s.cur.Load() }

// Dir is the bundle directory the Source reads.
func (s *Source) Dir() string { return s.dir }

// Close stops watching and waits until the watcher has returned. Configs
// built from the Source keep serving the last material.
func (s *Source) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// Reload reads the bundle now, whatever its generation, and takes it if
// it is usable; the error wraps ErrUnusableBundle otherwise, and the
// current material stays. It is what a reload signal calls.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := Load(s.dir, s.cfg.Now())
	if err != nil {
		return err
	}
	if ps := m.Problems(s.require); len(ps) > 0 {
		return fmt.Errorf("%w: generation %s: %s", ErrUnusableBundle, m.Generation, problemsText(ps))
	}
	s.swap(m)
	return nil
}

// watch looks at the generation every Poll until ctx ends.
func (s *Source) watch(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.cfg.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.look()
		}
	}
}

// look takes a new generation if there is one and it is usable. A bad one
// is logged once and looked at again on every tick, since a generation
// that is not yet valid becomes valid with time.
func (s *Source) look() {
	s.mu.Lock()
	defer s.mu.Unlock()
	gen, err := generationOf(s.dir)
	if err != nil {
		s.warnOnce("error:"+err.Error(), "cannot read the bundle's generation; keeping the current one", keyError, err)
		return
	}
	if gen == s.Current().Generation {
		return
	}
	m, err := Load(s.dir, s.cfg.Now())
	if errors.Is(err, errChanging) {
		return // mid-swap; the next tick sees it settled
	}
	if err != nil {
		s.warnOnce("error:"+err.Error(), "cannot read the new bundle; keeping the current one", keyError, err)
		return
	}
	if m.Generation == s.Current().Generation {
		return
	}
	if ps := m.Problems(s.require); len(ps) > 0 {
		s.warnOnce("generation:"+m.Generation, "new bundle generation is not usable; keeping the current one",
			keyGeneration, m.Generation, keyPrevious, s.Current().Generation, keyProblems, problemsText(ps))
		return
	}
	s.swap(m)
}

// warnOnce logs msg unless the last warning was about the same thing.
// The caller holds s.mu.
func (s *Source) warnOnce(what, msg string, args ...any) {
	if s.warned == what {
		return
	}
	s.warned = what
	s.log.Warn(msg, args...)
}

// swap makes m current and closes idle pooled connections, so the next
// request dials with m. The caller holds s.mu.
func (s *Source) swap(m *Material) {
	prev := s.cur.Swap(m)
	s.swaps.Add(1)
	s.warned = ""
	s.log.Info("bundle reloaded", keyGeneration, m.Generation, keyPrevious, prev.Generation,
		keyFingerprint, m.ServerFingerprint())
	s.transports.closeIdle()
}
