package status

import (
	"time"

	"github.com/crank-platform/crank-mtls-controller/probe"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// APIVersion is the version of the JSON model. A change that removes or
// retypes a field gets a new version (and a new /api/v2 path); adding a
// field does not.
const APIVersion = "v1"

// LevelUnknown is the observed level of a container that was never probed.
// It is not a probe.Level: nothing was measured.
const LevelUnknown = "unknown"

// Source is what the status surface reads. The controller implements it
// over its state store and CA (see Funcs); tests over fixed values.
type Source interface {
	// Records returns every container the controller remembers.
	Records() ([]state.Record, error)
	// Summary returns the global facts, read fresh on every request so a
	// CA rollover or a mode change shows at once.
	Summary() Summary
}

// Summary is the global part of the status, as the controller knows it.
type Summary struct {
	Mode        reconcile.Mode
	Environment reconcile.Environment
	Project     string    // compose project managed, "" if none
	Version     string    // controller version, from the build info
	CANotAfter  time.Time // expiry of the active (issuing) CA
	CASubject   string    // subject of the active CA, e.g. "CN=crank-mtls-controller CA"
	// CARollover is the CA rollover's progress, shown as
	// summary.ca_rollover; nil leaves it out.
	CARollover *Rollover
	// ProductionMinimum is the controller's --production-min-level, the
	// level production lifts a lower crank.security.level label to. Empty
	// means probe.MTLS, the flag's default.
	ProductionMinimum probe.Level
}

// Rollover is a CA rollover's progress: the phase (idle, overlap, reissue),
// since when, how many services are done, and which ones it waits for.
type Rollover struct {
	Phase      string    `json:"phase"`
	Since      time.Time `json:"since,omitzero"`
	Done       int       `json:"done"`
	Total      int       `json:"total"`
	WaitingFor []string  `json:"waiting_for,omitempty"`
	Message    string    `json:"message,omitempty"`
	RotateAt   time.Time `json:"rotate_at,omitzero"` // when the active CA rolls over by itself
	// Waiting details waiting_for, one entry per service: the container
	// holding the phase up, what it lacks (a code, e.g.
	// process-older-than-bundle), since when, and whether it has stalled
	// the phase (blocked it longer than a few probe intervals).
	Waiting []RolloverMember `json:"waiting,omitempty"`
	// Stalled counts the entries of Waiting that stalled the phase.
	Stalled int `json:"stalled"`
	// NotWaitedFor lists every container the phase does not wait for and
	// why (a code, e.g. client-auth-not-enforced, serves-plain, stopped).
	NotWaitedFor []RolloverMember `json:"not_waited_for,omitempty"`
}

// RolloverMember is one container as a rollover phase sees it.
type RolloverMember struct {
	Service   string    `json:"service"`
	Container string    `json:"container"`
	Reason    string    `json:"reason"` // what it lacks (waiting) or why it is not waited for
	Message   string    `json:"message,omitempty"`
	Since     time.Time `json:"since,omitzero"` // waiting: since when
	Stalled   bool      `json:"stalled,omitempty"`
}

// Funcs adapts two functions to a Source, which is all the controller needs:
//
//	status.Funcs{RecordsFunc: store.List, SummaryFunc: func() status.Summary {...}}
type Funcs struct {
	RecordsFunc func() ([]state.Record, error)
	SummaryFunc func() Summary
}

// Records calls RecordsFunc.
func (f Funcs) Records() ([]state.Record, error) { return f.RecordsFunc() }

// Summary calls SummaryFunc.
func (f Funcs) Summary() Summary { return f.SummaryFunc() }

// The JSON model. Every type below is built from state.Record and Summary
// only, and none has a field for key material: the model can carry serials,
// fingerprints and expiry dates, never a key (TestModelCarriesNoKeyMaterial
// walks these types to keep it so). Times are RFC 3339; a zero time is
// omitted.

// Report is GET /api/v1/status.
type Report struct {
	APIVersion string            `json:"api_version"` // always APIVersion
	Summary    Overview          `json:"summary"`
	Containers []ContainerStatus `json:"containers"` // sorted by service, then container name
	// Services rolls the containers up per service, sorted by name: the
	// worst level, the hour's timeline and the earliest expiries.
	Services []ServiceStatus `json:"services"`
}

// ServiceReport is GET /api/v1/status/{service}: every container of one
// service (several when it is scaled).
type ServiceReport struct {
	APIVersion  string            `json:"api_version"`
	GeneratedAt time.Time         `json:"generated_at"`
	Service     string            `json:"service"`
	Containers  []ContainerStatus `json:"containers"`
	// Production is the verdict over this service's containers only.
	Production ProductionVerdict `json:"production"`
}

// Overview is the stack-wide summary.
type Overview struct {
	GeneratedAt time.Time `json:"generated_at"`
	Mode        string    `json:"mode"`
	Environment string    `json:"environment"`
	Project     string    `json:"project,omitempty"`
	Version     string    `json:"version,omitempty"`
	CANotAfter  time.Time `json:"ca_not_after,omitzero"`
	CASubject   string    `json:"ca_subject,omitempty"`
	CADaysLeft  *int      `json:"ca_days_left,omitempty"` // whole days until CANotAfter; negative once expired
	// CARollover: phase (idle, overlap, reissue), since, done/total,
	// waiting_for and the CAs involved.
	CARollover *Rollover `json:"ca_rollover,omitempty"`
	// Counts maps an observed level to the number of containers at it. All
	// four levels (mtls, tls, plain, down) are always present; "unknown"
	// appears when some container was never probed.
	Counts     map[string]int `json:"counts"`
	Containers int            `json:"containers"`  // managed containers
	Drift      int            `json:"drift"`       // observed < desired
	BelowFloor int            `json:"below_floor"` // observed < floor: the alarm
	Degraded   int            `json:"degraded"`    // the controller gave up remediating
	// TimelineSince is where every timeline starts: an hour before
	// GeneratedAt by default, or the request's ?since=.
	TimelineSince time.Time `json:"timeline_since"`
	// Production is what production would make of the stack as observed
	// now, whatever the current environment.
	Production ProductionVerdict `json:"production"`
}

// ProductionVerdict counts the containers that would meet the production
// floor as observed now.
type ProductionVerdict struct {
	Minimum string `json:"minimum"` // --production-min-level: mtls, tls or plain
	Ready   int    `json:"ready"`
	Total   int    `json:"total"`
	Verdict string `json:"verdict"` // e.g. "ready for production: 5/7"
	// Blocking counts the containers per blocking code (ReadinessCode).
	Blocking map[string]int `json:"blocking"`
}

// ContainerStatus is one managed container.
type ContainerStatus struct {
	Service     string `json:"service"`
	Container   string `json:"container"`
	ContainerID string `json:"container_id"`
	Project     string `json:"project,omitempty"`
	Node        string `json:"node,omitempty"` // the swarm node of a task; absent in compose mode

	Desired       string    `json:"desired,omitempty"` // mtls, tls or plain; "" before the first probe
	Floor         string    `json:"floor,omitempty"`   // lowest level accepted without alarm
	Observed      string    `json:"observed"`          // mtls, tls, plain, down or unknown
	ObservedSince time.Time `json:"observed_since,omitzero"`
	Drift         bool      `json:"drift"`
	BelowFloor    bool      `json:"below_floor"`

	// Findings are the probe's findings, then the bundle validation's.
	Findings []Finding `json:"findings"`

	Bundle      BundleStatus      `json:"bundle"`
	Served      ServedStatus      `json:"served"`
	Probe       ProbeStatus       `json:"probe"`
	Remediation RemediationStatus `json:"remediation"`

	NeedsRestart       bool   `json:"needs_restart"`
	NeedsRestartReason string `json:"needs_restart_reason,omitempty"`

	// Production is whether this container would meet the production
	// floor as observed now, and why not.
	Production Readiness `json:"production"`

	// Transitions and History are the last few level changes and actions
	// (?recent=N), or those since ?since=; oldest first.
	Transitions []TransitionEntry `json:"transitions"`
	History     []EventEntry      `json:"history"`
	// Timeline is the observed level from summary.timeline_since to
	// summary.generated_at, built from every transition the state keeps.
	Timeline []Span `json:"timeline"`

	UpdatedAt time.Time `json:"updated_at,omitzero"` // when the record was last written
}

// Finding is one reason code with its message.
type Finding struct {
	Source  string `json:"source"` // "probe", "bundle" or "identity"
	Reason  string `json:"reason"` // e.g. client-auth-not-enforced, renew-due
	Message string `json:"message,omitempty"`
}

// Finding sources.
const (
	SourceProbe  = "probe"
	SourceBundle = "bundle"
	// SourceIdentity findings say who may hold the identity: identity-conflict,
	// label-from-image, alias-conflict, owner-conflict.
	SourceIdentity = "identity"
)

// BundleStatus describes the bundle last written to the shared volume.
type BundleStatus struct {
	ServerSerial string    `json:"server_serial,omitempty"` // as `openssl x509 -noout -serial` prints it
	ClientSerial string    `json:"client_serial,omitempty"`
	NotAfter     time.Time `json:"not_after,omitzero"` // earliest expiry of the two leaves
	DaysLeft     *int      `json:"days_left,omitempty"`
	Generation   string    `json:"generation,omitempty"`
	WrittenAt    time.Time `json:"written_at,omitzero"`
	IssuedReason string    `json:"issued_reason,omitempty"`
	IssuedAt     time.Time `json:"issued_at,omitzero"` // last issuance or renewal
	RenewAt      time.Time `json:"renew_at,omitzero"`  // next scheduled renewal
	// EventToBundleMS and ReceivedToBundleMS: for a new container, its
	// create event to its first bundle on disk, from the engine's event
	// time (its delay included) and from when the controller received it.
	EventToBundleMS    float64 `json:"event_to_bundle_ms,omitempty"`
	ReceivedToBundleMS float64 `json:"received_to_bundle_ms,omitempty"`
}

// ServedStatus is the certificate the container actually served.
type ServedStatus struct {
	Fingerprint string    `json:"fingerprint,omitempty"` // SHA-256 of the leaf, hex
	NotAfter    time.Time `json:"not_after,omitzero"`
}

// ProbeStatus is the last probe.
type ProbeStatus struct {
	LastAt     time.Time `json:"last_at,omitzero"`
	DurationMS float64   `json:"duration_ms"`
	Plan       string    `json:"plan,omitempty"`      // the remediation ladder's last decision, for humans
	PlanCode   string    `json:"plan_code,omitempty"` // its code, e.g. backoff, budget-spent, stood-aside
}

// RemediationStatus is the remediation ladder's state.
type RemediationStatus struct {
	Attempts     int       `json:"attempts"`
	Budget       int       `json:"budget"`
	BudgetLeft   int       `json:"budget_left"` // max(budget - attempts, 0)
	NextActionAt time.Time `json:"next_action_at,omitzero"`
	Degraded     string    `json:"degraded,omitempty"` // non-empty: gave up, and why
	LastAction   string    `json:"last_action,omitempty"`
	LastActionAt time.Time `json:"last_action_at,omitzero"`
	OnDrift      string    `json:"on_drift,omitempty"` // restart, relabel or report
}

// TransitionEntry is one change of observed level.
type TransitionEntry struct {
	At    time.Time `json:"at"`
	From  string    `json:"from"`
	To    string    `json:"to"`
	Cause string    `json:"cause"`
}

// EventEntry is one action the controller took.
type EventEntry struct {
	At     time.Time `json:"at"`
	Action string    `json:"action"`
	Result string    `json:"result"`
	Reason string    `json:"reason,omitempty"`
}

// Span is a stretch of time at one observed level. Level "unknown" is a
// stretch the controller has no observation of (before the container
// existed, or before its first probe).
type Span struct {
	Level string    `json:"level"`
	From  time.Time `json:"from"`
	To    time.Time `json:"to"`
}

// Readiness is one container judged against the production floor.
type Readiness struct {
	Floor    string             `json:"floor"` // the level production would require of it
	Ready    bool               `json:"ready"`
	Findings []ReadinessFinding `json:"findings"` // in check order; empty when nothing to say
}

// ReadinessFinding is one check's result. A blocking finding makes the
// container not ready; the others say what production would change.
type ReadinessFinding struct {
	Code     ReadinessCode `json:"code"`
	Message  string        `json:"message"`
	Blocking bool          `json:"blocking"`
}

// ServiceStatus is one service: its containers rolled up.
type ServiceStatus struct {
	Service    string `json:"service"`
	Containers int    `json:"containers"`
	// Observed is the worst level any of its containers serves (unknown
	// only when none was ever probed).
	Observed        string `json:"observed"`
	Drift           int    `json:"drift"`       // containers observed < desired
	BelowFloor      int    `json:"below_floor"` // containers observed < floor
	Degraded        int    `json:"degraded"`
	ProductionReady int    `json:"production_ready"` // containers that would meet the production floor
	// Timeline is the worst level of its containers at each moment.
	Timeline []Span `json:"timeline"`
	// Expiry is the earliest of each date across its containers.
	Expiry ServiceExpiry `json:"expiry"`
}

// ServiceExpiry is a service's certificate dates: the earliest across its
// containers, so a replica that lags is not hidden by one that renewed.
type ServiceExpiry struct {
	BundleNotAfter time.Time `json:"bundle_not_after,omitzero"` // earliest leaf in the volume
	DaysLeft       *int      `json:"days_left,omitempty"`       // whole days until BundleNotAfter
	RenewAt        time.Time `json:"renew_at,omitzero"`         // next scheduled renewal
	ServedNotAfter time.Time `json:"served_not_after,omitzero"` // earliest leaf a process served
	ServedDaysLeft *int      `json:"served_days_left,omitempty"`
	// ServesOlder counts containers whose served leaf expires before the
	// bundle's: the process has not taken the bundle on disk.
	ServesOlder int `json:"serves_older"`
}

// ErrorBody is every error answer of the API.
type ErrorBody struct {
	Error string `json:"error"`
}
