// Package swarm is the controller's swarm mode: the same security levels,
// identities and rotations as compose mode, for services of a Docker swarm,
// with certificates delivered as swarm secrets instead of a shared volume.
//
// The unit is a swarm service (the reconcile key is its ID); its tasks are
// what is probed and recorded. One pass (Reconciler.Reconcile) gathers the
// service, its tasks and its identity's secrets, then:
//
//  1. identity: IdentityName and the one-owner rule (JudgeClaim), on the
//     service's own labels only, read as compose reads a container's
//     (AsContainer), so crank.security.* means the same in both modes;
//  2. bundle: DecideBundle (ordered checks with the compose mode's reason
//     codes) says whether to issue a new generation: five secrets
//     crank-<identity>-<file>-<n> and a manifest config holding the public
//     half and, as labels, the facts (issuer, trust, renewal) that decide;
//  3. rollout: DesiredSecrets and DecideRollout swap the service's secret
//     references to the newest generation, mounted at
//     <root>/<identity>/<file>: a rolling update, start-first where the
//     service allows it, with failure_action rollback;
//  4. probe: every running task at its address on the controller's overlay
//     networks (probe.TargetFor on TaskContainer), against the fingerprint
//     of the generation it mounts;
//  5. remediate: the compose ladder (reconcile.Policy.Decide) per task,
//     with the service's budget; "restart" is a forced update, "relabel" a
//     service label update; both within the global action limit;
//  6. record: one state record per task, so the status API and the CA
//     rollover (rotation.Rotator, unchanged, through ReadBundle and
//     Inspect) read tasks as they read containers;
//  7. collect: generations nothing mounts any more are removed (Removable).
//
// CABackup keeps the CA in the swarm, sealed under a key-encryption key
// (Seal), so it survives the loss of the controller's node; the Sweeper
// removes what passes cannot see, and StatusHandler serves GET
// /api/v1/swarm (services, tasks and their nodes).
//
// Decisions (DecideBundle, DecideRollout, DecideRemediation, Removable,
// DesiredSecrets, Generations) are pure and table-tested. The package talks
// to the engine only through dockerwatch's model (Engine, ConfigStore,
// NodeLister), to the CA through Authority, to tasks through the prober,
// and to the state store.
package swarm
