package state

import "time"

// Caps on the per-record logs. They bound the size of a record (a crash-looping
// container would otherwise grow its history forever) while keeping enough to
// explain to a human what the controller did recently: the status timelines
// show an hour, and a container that crashes and comes back makes two
// transitions each time (to down, and back), so 16 cover seven such cycles
// after the first probe. Every List decodes every record, so the caps are
// also a cost per container.
const (
	MaxHistory     = 20 // Record.History entries kept, newest last
	MaxTransitions = 16 // Record.Transitions entries kept, newest last
)

// Record is what the controller remembers about one container. It is stored
// as JSON keyed by ContainerID.
type Record struct {
	ContainerID   string // Docker container ID; the key
	ContainerName string // name without the leading "/"
	Service       string // compose service (or container name); the bundle's directory
	Project       string // compose project, "" if none
	// Node is the swarm node a task runs on (its node ID); "" in compose
	// mode, where every container runs on the controller's engine.
	Node     string   `json:",omitempty"`
	DNSNames []string // SANs the bundle was issued for

	Bundle BundleRecord // the bundle last written for this container

	ObservedLevel string    // last observed security level
	LevelSince    time.Time // when ObservedLevel was first observed

	NeedsRestart       bool   // the bundle changed in a way the process only picks up on restart
	NeedsRestartReason string // why, for humans

	Findings []string // validation reasons from the last observation

	Identity IdentityRecord // what the identity rules found

	Level LevelRecord // desired vs observed, from the last probe

	Remediation RemediationState

	History     []Event      // actions taken; capped at MaxHistory, newest last
	Transitions []Transition // level changes; capped at MaxTransitions, newest last

	UpdatedAt time.Time // set by Store.Put from Options.Now; not caller-controlled
}

// IdentityRecord is the identity side of the last reconcile.
type IdentityRecord struct {
	// Refused is set when the container claims an identity another owner
	// holds: it gets no bundle, and the record exists only to report it.
	// Code that treats records as holders of a bundle must skip it.
	Refused bool `json:",omitempty"`
	// Findings are identity findings: identity-conflict, label-from-image,
	// alias-conflict, owner-conflict.
	Findings []Finding `json:",omitempty"`
	// KeyOwner is the "uid:gid" this container needs its keys owned by,
	// "" when it has no numeric user (root, or a named user).
	KeyOwner string `json:",omitempty"`
}

// Finding is a reason code and its message for humans.
type Finding struct {
	Reason  string
	Message string `json:",omitempty"`
}

// LevelRecord is the security-level side of the last observation: what was
// wanted, what the probe saw, and what the served certificate was.
type LevelRecord struct {
	Desired       string    // desired level (mtls, tls, plain)
	Floor         string    // lowest level accepted without alarm
	Drift         bool      // observed < desired
	BelowFloor    bool      // observed < floor
	ProbeFindings []string  // probe reason codes, e.g. "client-auth-not-enforced"
	ProbeMessages []string  // the findings' human messages, same order
	LastProbeAt   time.Time // zero if never probed
	// ProbedStartedAt and ProbedGeneration are the process start and the
	// bundle generation the last probe saw: while both are unchanged and
	// the probe is recent, a resync need not probe again.
	ProbedStartedAt   time.Time `json:",omitzero"`
	ProbedGeneration  string    `json:",omitempty"`
	ProbeDuration     time.Duration
	ServedFingerprint string    // SHA-256 of the served leaf, hex
	ServedNotAfter    time.Time // NotAfter of the served leaf
	LastPlan          string    // the ladder's last decision, for humans
	LastPlanCode      string    // its code, e.g. "backoff", "stood-aside"
	Budget            int       // restart budget of this container (label or global)
	OnDrift           string    // restart, relabel or report
}

// BundleRecord identifies a written bundle without holding any key material.
type BundleRecord struct {
	Generation   string    // ..data target dir name on the volume
	WrittenAt    time.Time // when that generation was written
	ServerSerial string
	ClientSerial string
	NotAfter     time.Time // earliest NotAfter of the leaf certificates
	IssuedReason string    // validation reason that caused the issue, e.g. "renew-due"
	IssuedAt     time.Time
	RenewAt      time.Time // next scheduled renewal (2/3 of the lifetime plus jitter)
	// EventToBundle and ReceivedToBundle: for the container's first bundle,
	// the time from its create event (as the engine stamped it, and as the
	// controller received it) to the bundle on disk. Zero if not measured.
	EventToBundle    time.Duration `json:",omitempty"`
	ReceivedToBundle time.Duration `json:",omitempty"`
	// ExpiryWarned is the smallest --expiry-warn threshold already logged
	// for the leaf with this NotAfter, so each is logged once.
	ExpiryWarned time.Duration
}

// RemediationState is the remediation policy's memory for one container.
type RemediationState struct {
	Attempts     int       // consecutive attempts without success
	NextActionAt time.Time // earliest time the next action may run (backoff)
	Degraded     string    // non-empty: gave up, and why
	LastAction   string
	LastActionAt time.Time
	// Relabels counts relabel attempts in this episode: at most one is made,
	// so a recreate that fails (and rolls back) is never retried in a loop.
	Relabels int
	// ReloadedAt is when a reload signal was last delivered; a process that
	// reloaded after its bundle was written is not stale.
	ReloadedAt time.Time
	// PhaseReload is the CA rollover phase (rotation.PhaseKey) in which the
	// container last had its rollover reload: one per phase, a budget of
	// its own that the drift episode's Attempts never touch.
	PhaseReload string
	// DownSeenAt is when the probe first saw "down" in the current run of
	// downs, zero otherwise: "down" is acted on only once confirmed.
	DownSeenAt time.Time
	// StoodAsideFor is the time of the stop by someone else that the
	// controller last stood aside for, so it is logged once.
	StoodAsideFor time.Time
}

// Event is one action the controller took on a container, and its outcome.
type Event struct {
	At     time.Time
	Action string
	Result string
	Reason string
}

// Transition is one change of observed security level.
type Transition struct {
	At    time.Time
	From  string
	To    string
	Cause string
}

// AddEvent appends e to r.History, dropping the oldest entries beyond
// MaxHistory.
func (r *Record) AddEvent(e Event) {
	r.History = capTail(append(r.History, e), MaxHistory)
}

// AddTransition appends t to r.Transitions, dropping the oldest entries
// beyond MaxTransitions.
func (r *Record) AddTransition(t Transition) {
	r.Transitions = capTail(append(r.Transitions, t), MaxTransitions)
}

// enforceCaps trims both logs, for records whose slices were appended to
// directly. It copies rather than reslices so the store never keeps (or
// encodes) a dropped entry hiding in a shared backing array.
func (r *Record) enforceCaps() {
	r.History = capTail(r.History, MaxHistory)
	r.Transitions = capTail(r.Transitions, MaxTransitions)
}

// capTail returns the last n elements of s. When it trims, it copies into a
// fresh slice so the dropped entries can be garbage collected.
func capTail[T any](s []T, n int) []T {
	if len(s) <= n {
		return s
	}
	out := make([]T, n)
	copy(out, s[len(s)-n:])
	return out
}
