package rotation

// Log keys of this package, constant so log queries don't drift.
const (
	keyPhase     = "phase"
	keyFrom      = "from"
	keyTrigger   = "trigger"
	keyCA        = "ca_fingerprint"
	keyDone      = "done"
	keyTotal     = "total"
	keyWaiting   = "waiting_for"
	keyLaggards  = "laggards"
	keyError     = "error"
	keyNotAfter  = "not_after"
	keyLeft      = "left"
	keyPath      = "path"
	keyService   = "service"
	keyContainer = "container"
	keyReason    = "reason"
	keyLacks     = "lacks"
	keySince     = "waiting_since"
	keyNotWaited = "not_waited_for"
)
