package swarm

// Metrics is how the swarm reconciler reports; implementations must be
// cheap. The controller registers the series (cmd/controller).
type Metrics interface {
	// BundleIssued counts a new generation, by validation reason.
	BundleIssued(reason string)
	// ServiceUpdate counts one service update by kind (rollout, restart,
	// relabel) and result (ok, error, dry-run, rate-limited).
	ServiceUpdate(kind, result string)
	// Tasks sets, for one identity, how many running tasks each node
	// serves at each level.
	Tasks(identity string, byNodeLevel map[NodeLevel]int)
	// Forget drops an identity's series.
	Forget(identity string)
}

// NodeLevel is a (node, observed level) pair.
type NodeLevel struct{ Node, Level string }
