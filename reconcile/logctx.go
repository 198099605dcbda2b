package reconcile

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// The worker mints one ID per reconcile and puts it, with a logger that
// carries it, in the reconcile's context (controller-runtime's
// addReconcileID and logf.IntoContext). Every line of the reconcile, the
// worker's own outcome line and the duration metric's exemplar then carry
// the same ID.

type reconcileCtxKey struct{}

type reconcileInfo struct {
	id  string
	log *slog.Logger
}

// withReconcile returns ctx carrying a reconcile's ID and logger.
func withReconcile(ctx context.Context, id string, log *slog.Logger) context.Context {
	return context.WithValue(ctx, reconcileCtxKey{}, reconcileInfo{id: id, log: log})
}

// ReconcileIDFrom returns the ID of the reconcile ctx belongs to, "" if none.
func ReconcileIDFrom(ctx context.Context) string {
	info, _ := ctx.Value(reconcileCtxKey{}).(reconcileInfo)
	return info.id
}

// LoggerFrom returns the reconcile's logger from ctx, or nil if ctx does
// not belong to a reconcile.
func LoggerFrom(ctx context.Context) *slog.Logger {
	info, _ := ctx.Value(reconcileCtxKey{}).(reconcileInfo)
	return info.log
}

// reconcileLogger is the logger of the reconcile of id: the worker's, or a
// new one with its own ID when Reconcile is called directly (tests, tools).
func (r *ContainerReconciler) reconcileLogger(ctx context.Context, id string) *slog.Logger {
	if log := LoggerFrom(ctx); log != nil {
		return log
	}
	return r.logger().With(keyReconcileID, newReconcileID(), keyContainerID, dockerwatch.ShortID(id))
}

// newReconcileID returns 8 hex digits: short enough to read in a log line,
// and unique enough among the reconciles of a few minutes.
func newReconcileID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
