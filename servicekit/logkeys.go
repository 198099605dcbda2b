package servicekit

// Log keys, in one place.
const (
	keyService     = "service"
	keyCertsDir    = "certs_dir"
	keyGeneration  = "generation"
	keyPrevious    = "previous_generation"
	keyProblems    = "problems"
	keyMissing     = "missing"
	keyLevel       = "security_level"
	keyEnvironment = "environment"
	keyTimeout     = "timeout"
	keyFingerprint = "served_cert_sha256"
	keyError       = "error"
)
