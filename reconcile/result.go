package reconcile

import (
	"context"
	"errors"
	"time"
)

// Result tells the controller when to look at a key again after a
// successful reconcile.
//
// It deliberately has no Requeue bool: controller-runtime deprecated theirs
// because "requeue" next to "requeue after" was ambiguous. An immediate retry
// is expressed by returning an error (which is rate limited per key), and a
// scheduled one by RequeueAfter.
type Result struct {
	// RequeueAfter, when positive, schedules the key to be reconciled again
	// after this long. Zero (or negative) means the key is done until
	// something else adds it.
	RequeueAfter time.Duration
}

// Reconciler converges the world for one key (a container ID).
//
// Reconcile is level based: it must re-read everything it needs and never
// trust what the event that caused the call said, because events are
// coalesced, reordered and sometimes lost.
//
// Retry semantics, enforced by Controller:
//   - nil error, zero Result: done; the key's backoff is reset.
//   - nil error, Result.RequeueAfter > 0: backoff reset, reconciled again
//     after RequeueAfter (an earlier scheduled or immediate Add wins).
//   - non-nil error: reconciled again after a per-key exponential backoff;
//     Result is ignored.
//   - error wrapped with Terminal: logged, backoff reset, not retried until
//     the key is added again.
//
// Reconcile is never called concurrently for the same key, but is called
// concurrently for different keys. The ctx is canceled when the controller
// shuts down; Reconcile should return promptly when it is.
type Reconciler interface {
	Reconcile(ctx context.Context, key string) (Result, error)
}

// terminalError marks an error that retrying cannot fix (a malformed
// container label, say). It is a distinct type, not a sentinel, so the
// original error keeps its own chain for errors.Is/As.
type terminalError struct{ err error }

func (e *terminalError) Error() string { return "terminal: " + e.err.Error() }
func (e *terminalError) Unwrap() error { return e.err }

// Terminal wraps err so the controller logs it and does not requeue the key.
// The key runs again only when something adds it (a new event or a resync).
// Terminal(nil) returns nil, so `return res, Terminal(err)` is safe on the
// success path too.
func Terminal(err error) error {
	if err == nil {
		return nil
	}
	return &terminalError{err: err}
}

// IsTerminal reports whether err, or any error it wraps, was marked with
// Terminal.
func IsTerminal(err error) bool {
	var te *terminalError
	return errors.As(err, &te)
}
