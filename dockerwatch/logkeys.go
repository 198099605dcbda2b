package dockerwatch

// Log attribute keys. Kept in one place so every line the package writes uses
// the same constant, snake_case names and dashboards can rely on them.
const (
	keyError      = "error"
	keyBackoff    = "backoff"
	keyConnLived  = "connection_lived"
	keyContainers = "containers"
	keyServices   = "services"
)
