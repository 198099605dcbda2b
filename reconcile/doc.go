// Package reconcile decides and acts, one container at a time.
//
// The contract is controller-runtime's: Reconcile(ctx, key) (Result, error),
// where the key is a container ID. Reconciliation is level-triggered: each
// call re-inspects the container through a small ContainerGetter interface,
// re-reads its bundle from the shared volume and its record from the state
// store, decides with pure functions (policy.go), and only then acts. A
// non-nil error is retried with per-key exponential backoff unless wrapped
// with Terminal; Result.RequeueAfter schedules the next look, which is how
// renewals happen without polling every bundle.
//
// The Queue de-duplicates keys and never runs one key twice at once; the
// Controller runs a bounded number of workers over it and recovers panics.
//
// It talks to: dockerwatch (the Container model, via ContainerGetter), certs
// (validation, issuance, the volume), and state (records). It never imports
// the Docker SDK.
package reconcile
