// Package dockerwatch is the controller's only door to the Docker Engine API.
// Nothing past this package sees the SDK's types.
//
// Reading containers:
//
//   - Client (client.go) wraps the SDK client, always with API version
//     negotiation, so one binary works from Engine API 1.41 up to current
//     engines. Inspect and List return the package's own Container model
//     (container.go).
//   - FromInspect (convert.go) is the conversion at that boundary: a pure
//     function, table-tested.
//   - The image-label cache (imagelabels.go) keeps each image's own labels
//     by image ID, so Container.ImageLabels can tell the labels a container
//     was given from those its image supplied.
//
// Watching:
//
//   - Watcher (watch.go) turns the engine's container event stream into keys
//     (container IDs) on a work queue. It subscribes first, then lists every
//     container and enqueues it, so no event can fall into the gap between
//     the two; it resyncs periodically, reconnects forever with capped,
//     jittered backoff, and runs a watchdog (watchdog.go) because event
//     streams are known to hang silently (Traefik#5833, docker-gen#224).
//   - Inspections (inspections.go) is the informer's cache: Client.Known
//     answers from the last inspect of a container until the Watcher says
//     it changed (any of its events, including those it queues nothing
//     for: a rename, an update, a pause, a network connected or
//     disconnected; a resync that found it changed; every container on a
//     reconnect), or until the entry is five minutes old. Client.Inspect
//     always asks the engine.
//   - Interventions (interventions.go) tells the controller's own container
//     actions from everyone else's: the Client marks each action it takes,
//     the Watcher notes every kill, stop and destroy event, and the
//     reconciler asks whether someone else is stopping a container before
//     it acts on it.
//
// Acting (the remediation actions, each through ActionsAPI so tests can hand
// in a fake):
//
//   - Restart and Signal (actions.go).
//   - Recreate (recreate.go, recreatespec.go) replaces a container by an
//     identical one with edited labels, and rolls back to the old container
//     if any step fails.
//
// Swarm (swarm*.go), for the controller's swarm mode, on a manager:
//
//   - Service, Task, Secret, SwarmConfig and Node are the package's own
//     models of the swarm objects, converted at the boundary like
//     Container (swarm_convert.go).
//   - The Client lists and inspects services and tasks, creates and
//     removes secrets and configs, and updates a service by ServiceChange
//     (swarm_change.go: the one place a spec is edited), refusing when the
//     spec moved on since the caller read it (ErrServiceChanged).
//   - NewSwarmWatcher is the same Watcher over another source: service
//     events and task containers' events, keyed by service ID, with a
//     resync that also fingerprints each service's running tasks.
//
// It talks to the Docker daemon over whatever DOCKER_HOST (or the host passed
// to New) points at, and to nothing else.
package dockerwatch
