package reconcile

// Log keys used by this package. They are constant and snake_case so log
// queries keep working across releases.
const (
	keyReconcileID = "reconcile_id"
	keyContainer   = "container"
	keyContainerID = "container_id"
	keyService     = "service"
	keyReason      = "reason"
	keyAction      = "action"
	keySANs        = "sans"
	keyGeneration  = "generation"
	keyServerSer   = "server_serial"
	keyClientSer   = "client_serial"
	keyNotAfter    = "not_after"
	keyRenewAt     = "renew_at"
	keyFindings    = "findings"
	keyError       = "error"
	keyKey         = "key"
	keyRequeue     = "requeue_after"
	keyRetries     = "retries"
)

// Keys of the level and remediation logs.
const (
	keyObserved = "observed"
	keyDesired  = "desired"
	keyFloor    = "floor"
)
