package swarm

// Log keys of this package: constant and snake_case, like every package's.
// service is the swarm service's name, identity the bundle's identity.
const (
	keyService    = "service"
	keyIdentity   = "identity"
	keyTask       = "task"
	keyNode       = "node"
	keyReason     = "reason"
	keyAction     = "action"
	keyGeneration = "generation"
	keyServerSer  = "server_serial"
	keyNotAfter   = "not_after"
	keyRenewAt    = "renew_at"
	keyObserved   = "observed"
	keyFindings   = "findings"
	keyError      = "error"
	keyWait       = "wait"
	keyOrder      = "update_order"
	keyVersion    = "service_version"
	keyBackups    = "backups"
	keyDigest     = "digest"
	keyRemoved    = "removed"
)
