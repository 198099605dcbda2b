// Command controller is the crank-mtls-controller daemon and its CLI.
//
// `controller run` (the default) wires the parts explicitly, with no init()
// registries: the CA in the state directory (certs.Authority), the state
// store (state), the shared certs volume (certs.Volume), the Docker client
// and event watcher (dockerwatch), and the reconcile queue and workers
// (reconcile). It serves /healthz, /readyz and /metrics on one listener.
//
// Every flag has an environment variable (config.go is the single list).
// The first SIGTERM or SIGINT drains and exits within --shutdown-timeout; a
// second exits at once.
package main
