package rotation

import (
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
)

// importRequest judges a request that names an imported CA (Request.Import)
// and returns the CA when it is ready to become the successor. done means
// the request is finished with: the CA is already in use (adopted before a
// crash, or installed as the first CA by certs.OpenAuthority), or it was
// refused. A request that waits (a rollover is running, or a newer import
// is being staged) is neither ready nor done.
//
// The staged material is checked again here: the CLI checked it when it
// staged it, but time has passed, and only what the controller checks at
// the moment it adopts counts.
func (r *Rotator) importRequest(req Request, phase Phase, now time.Time) (ready *certs.CA, done bool, err error) {
	a := r.Authority
	if req.Import == fingerprint(a.Active().Cert) || (a.Successor() != nil && req.Import == fingerprint(a.Successor().Cert)) {
		// Adopted before a crash (or installed at the first start): what
		// may be left of the staged files goes too.
		if err := certs.DropStagedImport(r.StateDir, req.Import); err != nil {
			return nil, false, err
		}
		r.noteImport(ImportStatus{Fingerprint: req.Import, State: ImportAdopted, At: now,
			Message: "the imported CA is in use; request consumed"})
		return nil, true, nil
	}
	if phase != PhaseIdle {
		r.noteImport(ImportStatus{Fingerprint: req.Import, State: ImportPending, At: now,
			Message: "waits for the rollover in progress (phase " + string(phase) + ") to finish"})
		return nil, false, nil
	}
	// Staged next to the request, which is not where the Authority keeps
	// its files in swarm mode.
	staged, ca, err := certs.ReadStagedImport(r.StateDir, certs.ImportOptions{Now: now, LeafLifetime: r.Issue.Lifetime, TrustDomain: r.ProberIdentity.TrustDomain})
	reason := certs.ImportReasonOf(err)
	switch {
	case staged != "" && staged != req.Import:
		return nil, false, nil // staged since; its own request follows
	case err == nil:
		return ca, false, nil
	case reason == "" && !errors.Is(err, fs.ErrNotExist):
		return nil, false, fmt.Errorf("CA import: %w", err) // I/O: try again next step
	case reason == "":
		reason = importNotStaged
	}
	r.logger().Error(fmt.Sprintf("CA import refused (%s): %v; nothing changed, and the staged files are removed: check the material and run `controller ca import` again",
		reason, err), keyCA, req.Import, keyReason, string(reason))
	if err := certs.DropStagedImport(r.StateDir, req.Import); err != nil {
		return nil, false, err
	}
	r.noteImport(ImportStatus{Fingerprint: req.Import, State: ImportRefused, Reason: string(reason), Message: err.Error(), At: now})
	return nil, true, nil
}

// importNotStaged is the reason of an import request whose files are gone.
const importNotStaged certs.ImportReason = "not-staged"

// consumes says whether a request is finished with once the step's action
// was taken and saved. An import request is finished only by adopting its
// CA (or in importRequest): an expired CA's recovery or a running rollover
// leaves it waiting, and it is adopted once the rotation is idle again. A
// plain request is finished by any rollover, its own or one running.
func consumes(req Request, a Action, phase Phase) bool {
	if req.Import != "" {
		return a == ActionAdoptSuccessor
	}
	return a == ActionCreateSuccessor || a == ActionRecoverExpired || phase != PhaseIdle
}

func (r *Rotator) noteImport(s ImportStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastImport = &s
}
