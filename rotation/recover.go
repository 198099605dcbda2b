package rotation

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// RecoverExpired brings back an Authority whose active CA has expired
// (OpenAuthority's ErrCAExpired, or the CA expiring while running): it
// promotes a successor at once, creating one unless a still-valid one
// exists. There is no overlap: the old CA can no longer vouch for anything,
// so waiting for services to trust the new one first would protect nothing.
// Every bundle then fails validation (wrong-ca, wrong-issuer or expired)
// and the reconciler reissues it.
//
// Retiring certificates that have all expired are retired too: leaves are
// clamped to their CA's lifetime, so no valid leaf of them can remain. A
// retiring CA still valid (an older rollover not finished) stays until the
// rotator's reissue phase retires it.
//
// An active CA that has not expired is left alone (nil error), so callers
// can call it without checking first.
func RecoverExpired(a *certs.Authority, now time.Time, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	oldCA := a.Active()
	old, oldEnd := oldCA.Cert, oldCA.NotAfter() // an intermediate expires with its chain
	if !now.After(oldEnd) {
		return nil
	}
	next := a.Successor()
	switch {
	case next != nil && now.After(next.NotAfter()):
		// A successor that expired too cannot be promoted; there is no
		// certs API to drop it, and a human must look.
		return fmt.Errorf("recovering the expired CA: its successor %q expired as well at %s", next.Cert.Subject.CommonName,
			next.NotAfter().UTC().Format(time.RFC3339))
	case next == nil:
		if _, err := a.CreateSuccessor(now); err != nil && !errors.Is(err, certs.ErrSuccessorExists) {
			return fmt.Errorf("recovering the expired CA: %w", err)
		}
	}
	if err := a.Promote(); err != nil {
		return fmt.Errorf("recovering the expired CA: %w", err)
	}
	active := a.Active().Cert
	msg := fmt.Sprintf("CA expired at %s: promoted a new CA %q (valid until %s) without overlap; every bundle will be reissued and services restarted",
		oldEnd.UTC().Format(time.RFC3339), active.Subject.CommonName, active.NotAfter.UTC().Format(time.RFC3339))
	if oldCA.Imported && next == nil {
		msg += "; the expired CA was imported, and its successor is one of the controller's own: import a new CA of your PKI with `controller ca import`"
	}
	log.Error(msg, keyPhase, string(PhaseReissue), keyCA, fingerprint(active))
	for _, c := range a.Retiring() {
		if !now.After(c.NotAfter) {
			return nil
		}
	}
	if err := a.Retire(); err != nil {
		return fmt.Errorf("recovering the expired CA: retiring the expired CAs: %w", err)
	}
	log.Warn("retired the expired CA at once: no valid leaf of it can remain", keyCA, fingerprint(old))
	return nil
}
