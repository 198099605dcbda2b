//go:build e2e

package e2e

import (
	"context"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
)

// Before a stack moves from development to production, `controller status
// --as production` says what production would refuse: here a plain-only
// service, named with its code. Once the service is fixed (rebuilt to serve
// mTLS under the same name), the check passes.
func TestReadinessNamesWhatProductionWouldRefuseUntilFixed(t *testing.T) {
	t.Parallel()
	f := lvNew(t)
	f.startController(t, "CRANK_ENVIRONMENT=development")
	platform := f.h.RunService(t, f.serviceOpts("platform", CreateOnly())...)
	f.startService(t, platform)
	legacy := f.h.RunService(t, f.serviceOpts("legacy", WithMode("plain-only"), CreateOnly())...)
	f.startService(t, legacy)

	var out, errOut string
	WaitFor(t, lvDeadline, func() (bool, string) {
		var code int
		var err error
		out, errOut, code, err = f.h.ControllerExec(f.ctrl.ID, "status", "--as", "production")
		// Both probed: platform ready, legacy refused for what it serves.
		return err == nil && code == 1 && strings.Contains(errOut, "legacy") && !strings.Contains(errOut, "platform") &&
				strings.Contains(out, "below-desired"),
			"want exit 1 naming legacy alone, below-desired; got " + out + errOut
	})
	t.Logf("controller status --as production, with a plain-only service:\n%s%s", out, errOut)
	if !strings.Contains(out, "ready for production: 1/2") {
		t.Errorf("readiness summary: got %q, want ready for production: 1/2", out)
	}

	// The fix: legacy is rebuilt to serve mTLS, as docker compose up --build
	// does (a new container under the service's name).
	ctx, cancel := context.WithTimeout(context.Background(), dockerCall)
	defer cancel()
	if err := f.h.Docker.ContainerRemove(ctx, legacy.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatalf("removing legacy: %v", err)
	}
	fixed := f.h.RunService(t, f.serviceOpts("legacy", WithName(legacy.Name), CreateOnly())...)
	f.startService(t, fixed)
	WaitFor(t, lvDeadline, func() (bool, string) {
		var code int
		var err error
		out, errOut, code, err = f.h.ControllerExec(f.ctrl.ID, "status", "--as", "production")
		return err == nil && code == 0, "want exit 0 once legacy serves mtls; got " + out + errOut
	})
	t.Logf("controller status --as production, after the fix:\n%s", out)
}
