package dockerwatch

import (
	"io/fs"
	"time"
)

// Labels swarm and `docker stack deploy` put on services and their task
// containers.
const (
	LabelStackNamespace = "com.docker.stack.namespace"
	LabelSwarmServiceID = "com.docker.swarm.service.id"
	LabelSwarmTaskID    = "com.docker.swarm.task.id"
)

// Update orders of a service's update_config.
const (
	UpdateStartFirst = "start-first"
	UpdateStopFirst  = "stop-first"
)

// Service is the controller's own view of a swarm service: its spec as far
// as the controller reads or changes it, and the state of its last update.
// It is built from the Engine API's service at this package's boundary.
type Service struct {
	ID      string
	Name    string
	Version uint64 // the spec version an update must name
	// Labels are the service's own labels (deploy.labels in a stack file).
	// Only these carry crank.security.*: an image's LABELs end up in the
	// containers' labels, never here.
	Labels map[string]string
	// Stack is the com.docker.stack.namespace label, "" outside a stack.
	Stack    string
	Image    string
	User     string            // ContainerSpec.User
	Env      map[string]string // ContainerSpec.Env split at the first "="
	Hostname string
	// HealthStartPeriod is the healthcheck's start period; zero if none.
	HealthStartPeriod time.Duration

	Secrets []SecretRef
	// PreviousSecrets are the references of the spec a rollback returns to.
	PreviousSecrets []SecretRef
	Networks        []ServiceNetwork
	// TargetPorts are the container ports of the endpoint spec.
	TargetPorts []Port
	// HostPorts: a port is published in host mode, so two tasks of the
	// service cannot run on one node at once (no start-first there).
	HostPorts bool
	Global    bool
	Replicas  int // desired replicas; 0 for global services

	ForceUpdate   uint64
	UpdateOrder   string // start-first, stop-first or "" (stop-first)
	FailureAction string // pause, continue, rollback or "" (pause)
	// UpdateState is the last update's state: "", updating, paused,
	// completed, rollback_started, rollback_paused or rollback_completed.
	UpdateState     string
	UpdateMessage   string
	UpdateStartedAt time.Time
	CreatedAt       time.Time
	UpdatedAt       time.Time
}

// SecretRef is one secret mounted into a service's tasks.
type SecretRef struct {
	SecretID   string
	SecretName string
	// Target is the file's path in the container: a bare name lands in
	// /run/secrets/, an absolute path where it says.
	Target   string
	UID, GID string
	Mode     fs.FileMode
}

// ServiceNetwork is a network the service's tasks attach to.
type ServiceNetwork struct {
	ID      string
	Aliases []string
}

// Task is one task of a service: a slot's container on one node.
type Task struct {
	ID        string
	ServiceID string
	Slot      int // 0 for global services
	NodeID    string
	// State is the task's observed state (new ... running, complete,
	// shutdown, failed, rejected, orphaned); DesiredState what the
	// orchestrator wants (running, shutdown, ...).
	State        string
	DesiredState string
	Message, Err string
	// StateSince is when State was reached (the status timestamp).
	StateSince  time.Time
	CreatedAt   time.Time
	ContainerID string
	// Secrets are the references the task was created with: the bundle
	// generation its container mounts.
	Secrets     []SecretRef
	ForceUpdate uint64
	// Networks are the task's addresses by network name, as a container's
	// (IPAddress only; the prefix length is dropped).
	Networks map[string]Network
}

// Task states the controller distinguishes.
const (
	TaskStarting = "starting" // the container runs; its health check has not passed yet
	TaskRunning  = "running"
	TaskShutdown = "shutdown"
)

// Running reports whether the task runs and is meant to.
func (t Task) Running() bool { return t.State == TaskRunning && t.DesiredState == TaskRunning }

// ProcessUp reports whether the task's container has started and not
// ended (starting or running), whatever the orchestrator now wants: a task
// told to shut down keeps its process, and the bundle it started with,
// until the process exits, which may take its whole stop grace period.
func (t Task) ProcessUp() bool { return t.State == TaskStarting || t.State == TaskRunning }

// Live reports whether the task is meant to run or its process is still
// up: the tasks whose bundle matters.
func (t Task) Live() bool { return t.DesiredState == TaskRunning || t.ProcessUp() }

// Secret is a swarm secret's metadata; its value cannot be read back.
type Secret struct {
	ID        string
	Name      string
	Labels    map[string]string
	CreatedAt time.Time
}

// SwarmConfig is a swarm config, whose data can be read back.
type SwarmConfig struct {
	ID        string
	Name      string
	Labels    map[string]string
	Data      []byte
	CreatedAt time.Time
}

// Node is a swarm node.
type Node struct {
	ID       string
	Hostname string
	Role     string // manager or worker
	State    string // ready, down, unknown, disconnected
	Leader   bool
}

// SwarmInfo is what the engine says about its swarm membership.
type SwarmInfo struct {
	NodeID string
	// LocalState is inactive, pending, active, error or locked.
	LocalState string
	// ControlAvailable: this node is a manager, so it can read and
	// change services, secrets and configs.
	ControlAvailable bool
	Managers, Nodes  int
}
