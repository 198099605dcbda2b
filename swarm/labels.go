package swarm

// Labels the controller puts on the swarm secrets and configs it creates.
// The engine keeps them in its Raft store with the objects, so what a
// generation holds (which CA issued it, which CAs it trusts, when it is
// due) survives the loss of the controller's node and its local state.
const (
	// LabelManaged marks an object the controller made, and what it is:
	// ManagedBundle (a bundle secret or its manifest) or ManagedCABackup.
	LabelManaged = "crank.security.managed"
	// LabelIdentity is the identity a bundle object belongs to.
	LabelIdentity = "crank.security.identity"
	// LabelGeneration is the bundle generation, 1, 2, ...: a new one for
	// every issuance, since secrets are immutable.
	LabelGeneration = "crank.security.generation"
	// LabelFile is the bundle file a secret holds (tls.crt, tls.key, ...).
	LabelFile = "crank.security.file"
	// LabelOwner is the claimant that owns the identity ("swarm:<service
	// name>"): after a loss of the state, the first-owner rule is rebuilt
	// from it.
	LabelOwner = "crank.security.owner"

	// Manifest labels: the public facts of a generation.
	LabelServerFingerprint = "crank.security.server-fingerprint"
	LabelIssuer            = "crank.security.issuer" // SHA-256 of the CA certificate that signed both leaves
	LabelTrust             = "crank.security.trust"  // SHA-256 of each CA in ca.crt, comma-separated
	LabelNotAfter          = "crank.security.not-after"
	LabelRenewAt           = "crank.security.renew-at"
	LabelIssuedReason      = "crank.security.issued-reason"
	LabelServerSerial      = "crank.security.server-serial"
	LabelClientSerial      = "crank.security.client-serial"
	LabelDNSNames          = "crank.security.dns-names"
)

// Values of LabelManaged.
const (
	ManagedBundle   = "bundle"
	ManagedCABackup = "ca-backup"
)
