// Package dockerwatch is the controller's only door to the Docker Engine API.
//
// It does three things:
//
//   - Client wraps the SDK client (always with API version negotiation, so one
//     binary works from Engine API 1.41 up to current engines) and converts the
//     engine's inspect response into the package's own Container model at the
//     boundary. Nothing past this package sees the SDK's types.
//   - FromInspect is that conversion: a pure function, table-tested.
//   - Watcher turns the engine's container event stream into keys (container
//     IDs) on a work queue. It subscribes first, then lists every container and
//     enqueues it, so no event can fall into the gap between the two; it resyncs
//     periodically, reconnects forever with capped, jittered backoff, and runs a
//     watchdog because event streams are known to hang silently (Traefik#5833,
//     docker-gen#224).
//
// It talks to the Docker daemon over whatever DOCKER_HOST (or the host passed
// to New) points at, and to nothing else.
package dockerwatch
