package rotation

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/probe"
)

// Files the rotator shares with `controller ca` in the state dir. The CLI
// runs in the controller's container (docker exec) while the controller
// holds the state store's lock, so it cannot open bbolt: it writes a request
// file and reads a status file instead. There is no HTTP endpoint that
// mutates anything.
const (
	RequestFile = "ca-rotate-request"
	StatusFile  = "ca-rollover.json"
)

// Request is the content of RequestFile.
type Request struct {
	RequestedAt time.Time `json:"requested_at"`
	// Import is the SHA-256 fingerprint (hex) of the CA that `controller
	// ca import` staged (certs.StageImport) to be the successor; empty for
	// a rollover to a CA the controller creates. It tells an import that
	// is already done (the fingerprint is the active CA or the successor)
	// from one still to do, and a staged CA from one staged since.
	Import string `json:"import,omitempty"`
}

// Status is the rollover as humans and the status API see it.
type Status struct {
	Phase   Phase     `json:"phase"`
	Since   time.Time `json:"since,omitzero"` // when the phase started
	Trigger string    `json:"trigger,omitempty"`
	// StartedAt is when the current (or last) rollover started.
	StartedAt time.Time `json:"started_at,omitzero"`
	Done      int       `json:"done"`
	Total     int       `json:"total"`
	// WaitingFor lists the services the phase waits for; Why says what
	// each lacks.
	WaitingFor []string          `json:"waiting_for,omitempty"`
	Why        map[string]string `json:"why,omitempty"`
	// Blockers say, per waited-for service, which container lacks what
	// (a code), since when, and whether that stalled the phase.
	Blockers []Blocker `json:"waiting,omitempty"`
	// Skipped are the members the phase does not wait for, and why.
	Skipped []Skipped `json:"not_waited_for,omitempty"`
	// Message is the last progress line.
	Message   string    `json:"message,omitempty"`
	ActiveCA  CAStatus  `json:"active_ca"`
	Successor *CAStatus `json:"successor_ca,omitempty"`
	Retiring  int       `json:"retiring_cas"`
	// RotateAt is when the active CA rolls over by itself; zero for an
	// imported CA, which never does.
	RotateAt time.Time `json:"rotate_at,omitzero"`
	// Import is what became of the last import request this process saw.
	Import         *ImportStatus `json:"import,omitempty"`
	RequestPending bool          `json:"request_pending,omitempty"`
	CheckedAt      time.Time     `json:"checked_at,omitzero"`
}

// CAStatus identifies one CA certificate.
type CAStatus struct {
	Fingerprint string    `json:"fingerprint"`
	Subject     string    `json:"subject"`
	NotAfter    time.Time `json:"not_after"`
	// Issuer is set for an intermediate: the subject of the CA above it.
	Issuer string `json:"issuer,omitempty"`
	// Imported: it came through `controller ca import`.
	Imported bool `json:"imported,omitempty"`
}

// ImportState is what the rotator did with an import request.
type ImportState string

// Import states.
const (
	ImportPending ImportState = "pending" // staged; waits for the running rollover to finish
	ImportAdopted ImportState = "adopted" // the successor (or the active CA, on a first start)
	ImportRefused ImportState = "refused" // failed a check again at the controller; its files were removed
)

// ImportStatus is the last import request's outcome.
type ImportStatus struct {
	Fingerprint string      `json:"fingerprint"`
	State       ImportState `json:"state"`
	// Reason is the failed check (certs.ImportReason) of a refused import.
	Reason  string    `json:"reason,omitempty"`
	Message string    `json:"message,omitempty"`
	At      time.Time `json:"at"`
}

// WriteRequest asks the controller for a rollover by writing RequestFile
// into stateDir, durably. The rotator picks it up on its next step.
func WriteRequest(stateDir string, now time.Time) error {
	return writeRequest(stateDir, Request{RequestedAt: now.UTC()})
}

// RequestImport asks the controller to roll over to ca, an operator's CA
// that certs.CheckImport accepted: it stages ca (certs.StageImport), then
// writes RequestFile naming it. The files go first, so the rotator never
// sees a request for a CA not fully staged. A controller that has no CA
// yet starts with the staged CA instead (certs.OpenAuthority).
func RequestImport(stateDir string, ca *certs.CA, now time.Time) error {
	if err := certs.StageImport(stateDir, ca); err != nil {
		return err
	}
	return writeRequest(stateDir, Request{RequestedAt: now.UTC(), Import: fingerprint(ca.Cert)})
}

func writeRequest(stateDir string, req Request) error {
	raw, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encoding the rotate request: %w", err)
	}
	return writeDurable(stateDir, RequestFile, append(raw, '\n'))
}

// readRequest reads RequestFile; ok is false when there is none. A request
// that does not decode is an error for a human: acting on it could roll
// over to a CA of our own where an import was meant.
func readRequest(stateDir string) (req Request, ok bool, err error) {
	raw, err := os.ReadFile(filepath.Join(stateDir, RequestFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return req, false, nil
	case err != nil:
		return req, false, fmt.Errorf("reading the rotate request: %w", err)
	}
	if err := json.Unmarshal(raw, &req); err != nil {
		return req, false, fmt.Errorf("decoding the rotate request %s (remove it and ask again): %w", filepath.Join(stateDir, RequestFile), err)
	}
	return req, true, nil
}

// ReadStatus reads StatusFile from stateDir. A missing file wraps
// fs.ErrNotExist: the controller has not run a step yet.
func ReadStatus(stateDir string) (Status, error) {
	var s Status
	raw, err := os.ReadFile(filepath.Join(stateDir, StatusFile))
	if err != nil {
		return s, fmt.Errorf("reading the CA rollover status: %w", err)
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return s, fmt.Errorf("decoding the CA rollover status %s: %w", filepath.Join(stateDir, StatusFile), err)
	}
	return s, nil
}

func writeStatus(stateDir string, s Status) error {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding the CA rollover status: %w", err)
	}
	return writeDurable(stateDir, StatusFile, append(raw, '\n'))
}

func removeRequest(stateDir string) error {
	root, err := os.OpenRoot(stateDir)
	if err != nil {
		return fmt.Errorf("removing the rotate request: %w", err)
	}
	defer root.Close()
	if err := root.Remove(RequestFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the rotate request: %w", err)
	}
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("removing the rotate request: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("removing the rotate request: syncing the state dir: %w", err)
	}
	return nil
}

// writeDurable writes a 0600 file into dir through certs.WriteFileDurable
// (temp file, fsync, rename, fsync dir), so a crash leaves the old content
// or the new, never a torn file.
func writeDurable(dir, name string, data []byte) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("opening state dir %s: %w", dir, err)
	}
	defer root.Close()
	if err := certs.WriteFileDurable(root, name, data, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// fingerprint is probe.Fingerprint: served and bundle fingerprints must
// compare equal.
func fingerprint(c *x509.Certificate) string { return probe.Fingerprint(c) }

func caStatus(ca *certs.CA) CAStatus {
	s := CAStatus{Fingerprint: fingerprint(ca.Cert), Subject: ca.Cert.Subject.String(), NotAfter: ca.NotAfter().UTC(), Imported: ca.Imported}
	if len(ca.Chain) > 0 {
		s.Issuer = ca.Chain[0].Subject.String()
	}
	return s
}
