package reconcile

// Labels read from managed containers. All live under crank.security.*.
const (
	// LabelEnable opts a container in ("true") or out ("false"). Without it,
	// containers in the controller's own compose project are managed.
	LabelEnable = "crank.security.enable"
	// LabelService overrides the service name used for the bundle directory,
	// the client identity and the first SAN. Needed when the compose service
	// or container name is not a valid DNS label (e.g. contains "_").
	LabelService = "crank.security.service"
	// LabelKeyOwner sets the owner of the bundle's files as "uid[:gid]", so a
	// non-root service can read its own key. Without it the container's
	// numeric User is used; a named user cannot be resolved from outside the
	// image, so the files then stay root-owned and the gap is reported.
	LabelKeyOwner = "crank.security.key-owner"
	// LabelKeyGroupRead, when "true", makes keys 0640 instead of 0600 so a
	// group (the gid of LabelKeyOwner) can read them.
	LabelKeyGroupRead = "crank.security.key-group-read"
)

// Labels of the security-level policy.
const (
	// LabelLevel is the desired level: mtls (default), tls or plain.
	LabelLevel = "crank.security.level"
	// LabelOnDrift is what to do when observed < desired: restart (default:
	// restart within the budget, then report degraded), relabel (restart
	// within the budget, then recreate once with labels recording what was
	// observed, then report degraded), or report (never touch the container).
	LabelOnDrift = "crank.security.on-drift"
	// LabelReload declares how the service reloads certificates without a
	// restart: "watch" (it watches its bundle and reloads by itself, as the
	// service kit does) or "signal:<NAME>", e.g. "signal:SIGHUP".
	LabelReload = "crank.security.reload"
	// ReloadWatch is LabelReload's value for a service that reloads by
	// itself.
	ReloadWatch = "watch"
	// LabelRestartBudget overrides the global restart budget for one
	// container (0 means go straight to the end of the ladder).
	LabelRestartBudget = "crank.security.restart-budget"
)

// Labels the controller writes when it relabels (recreates) a container.
const (
	LabelObserved = "crank.security.observed"
	LabelDrift    = "crank.security.drift"
)
