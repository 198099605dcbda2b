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
	// RotateAt is when the active CA rolls over by itself.
	RotateAt       time.Time `json:"rotate_at,omitzero"`
	RequestPending bool      `json:"request_pending,omitempty"`
	CheckedAt      time.Time `json:"checked_at,omitzero"`
}

// CAStatus identifies one CA certificate.
type CAStatus struct {
	Fingerprint string    `json:"fingerprint"`
	Subject     string    `json:"subject"`
	NotAfter    time.Time `json:"not_after"`
}

// WriteRequest asks the controller for a rollover by writing RequestFile
// into stateDir, durably. The rotator picks it up on its next step.
func WriteRequest(stateDir string, now time.Time) error {
	raw, err := json.Marshal(Request{RequestedAt: now.UTC()})
	if err != nil {
		return fmt.Errorf("encoding the rotate request: %w", err)
	}
	return writeDurable(stateDir, RequestFile, append(raw, '\n'))
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

func requestPresent(stateDir string) (bool, error) {
	_, err := os.Stat(filepath.Join(stateDir, RequestFile))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, fmt.Errorf("checking for a rotate request: %w", err)
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

func caStatus(c *x509.Certificate) CAStatus {
	return CAStatus{Fingerprint: fingerprint(c), Subject: c.Subject.String(), NotAfter: c.NotAfter.UTC()}
}
