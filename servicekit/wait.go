package servicekit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrIncompleteBundle is wrapped by Wait's error in production: no
// complete, consistent bundle appeared in time.
var ErrIncompleteBundle = errors.New("no complete, consistent bundle")

// Wait waits until the bundle is complete (all five files) and consistent
// (see Problems), looking every cfg.Poll, and returns LevelMTLS.
//
// When timeout passes first, in production it returns an error wrapping
// ErrIncompleteBundle that names what is missing or wrong; in development
// it logs that once, as a WARN, and returns the level the usable files
// support, so the service can start degraded. A cancelled ctx ends the
// wait with ctx's error in either environment.
func Wait(ctx context.Context, cfg Config, timeout time.Duration) (Level, error) {
	cfg = cfg.withDefaults()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	for {
		dir := cfg.BundleDir()
		m, err := Load(dir, cfg.Now())
		if err == nil && len(m.Problems(AllFiles())) == 0 {
			return LevelMTLS, nil
		}
		select {
		case <-ctx.Done():
			return LevelPlain, fmt.Errorf("waiting for the bundle in %s: %w", dir, ctx.Err())
		case <-deadline.C:
			return giveUp(cfg, dir, m, err, timeout)
		case <-tick.C:
		}
	}
}

// giveUp is Wait's end without a complete bundle: an error in production,
// one WARN and a degraded level in development.
func giveUp(cfg Config, dir string, m *Material, loadErr error, timeout time.Duration) (Level, error) {
	var what string
	if loadErr != nil {
		what = loadErr.Error()
	} else {
		what = describeIncomplete(m)
	}
	if cfg.Environment == Production {
		return LevelPlain, fmt.Errorf("%w in %s after %s: %s", ErrIncompleteBundle, dir, timeout, what)
	}
	level := m.Level()
	cfg.Logger.Warn("no complete mTLS bundle; starting degraded",
		keyService, cfg.Service, keyEnvironment, cfg.Environment, keyCertsDir, dir, keyTimeout, timeout.String(),
		keyLevel, level, keyMissing, m.Present().missing(AllFiles()), keyProblems, what)
	return level, nil
}

// describeIncomplete says in one line what keeps m from being complete:
// "missing client.key, ca.crt; tls.crt: expired: ...".
func describeIncomplete(m *Material) string {
	var parts []string
	if missing := m.present.missing(AllFiles()); len(missing) > 0 {
		parts = append(parts, "missing "+strings.Join(missing, ", "))
	}
	if len(m.problems) > 0 {
		parts = append(parts, problemsText(m.problems))
	}
	return strings.Join(parts, "; ")
}
