// Package rotation rolls the controller's CA over without breaking a
// running stack, and brings the controller back by itself when its CA has
// expired.
//
// A rollover has three phases, persisted in the state store's meta under
// MetaKey so a restart at any step resumes where it was:
//
//	idle     -> overlap  CreateSuccessor: every trust bundle holds old + new
//	overlap  -> reissue  Promote: issuance switches to the new CA
//	reissue  -> idle     Retire: the old CA leaves the trust bundles
//
// The Rotator only moves the CA files (through certs.Authority) and the
// prober's client certificate; the reconciler does the rest as usual:
// trust-bundle-stale rewrites ca.crt, wrong-issuer reissues leaves, and the
// stale-process rule restarts services, staggered by the global limiter.
// Each phase ends on evidence, not on a timer: during the overlap the
// prober presents a certificate signed by the SUCCESSOR, so only a service
// that reloaded the new trust bundle reaches its desired level; during
// reissue every service must serve the leaf on disk, issued by the new CA.
// --ca-rotate-timeout bounds the wait, after which it proceeds with an ERROR
// naming the laggards.
//
// Only evidence that matters is waited for (OverlapVerdict, ReissueVerdict):
// the overlap waits only for servers that can refuse the new CA's client
// certificate, and every member it does not wait for is reported with a
// typed reason. A reload the phase waits for has a budget of its own in the
// reconciler, one per container and phase (ReloadNeed, PhaseKey), so a
// container whose drift budget is spent cannot hold a phase up by never
// restarting. A service that blocks a phase past StallAfter is reported
// once, at WARN or ERROR in production, in the status and in a gauge.
//
// The CA files are the source of truth for which CAs exist; the meta only
// adds when each phase started. Gathering (Docker, the volume, the state
// store) is kept apart from deciding (Decide, ReconcileMeta, the blocker
// checks), which are pure and table-tested.
//
// The successor is either a CA the controller creates, or one the operator
// brought: `controller ca import` (or `ca rotate --to-cert`) checks it,
// stages it in the state dir (certs.StageImport) and writes a request
// naming its fingerprint (RequestImport). The rotator checks the staged CA
// again, adopts it as the successor (certs.Authority.AdoptSuccessor) and
// runs the same three phases; an import that fails its checks now is
// refused with an ERROR naming the check, and its files are removed. An
// imported CA is never replaced automatically (Decide): the operator's PKI
// is not left without someone asking.
//
// It talks to: certs (Authority, Volume reads), state (records and meta),
// dockerwatch (the Container model, through ContainerGetter) and the prober
// (SetCredentials). The CLI (`controller ca rotate|import|status`) only
// touches small files in the state dir: RequestFile, StatusFile and the
// staged import.
package rotation
