package reconcile

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
)

// This file holds the pure decisions of a reconcile: which containers are
// managed, what identity and owner their bundle gets, what a set of
// validation findings asks for, and whether a running process holds stale
// certificates. No I/O happens here; every function is table-tested.

// Scope says which containers the controller manages.
type Scope struct {
	// Project is the controller's own compose project; its containers are
	// managed by default. Empty means only opted-in containers are managed.
	Project string
	// SelfID is the controller's own container ID, never managed.
	SelfID string
}

// ScopeReason says why a container is or is not managed.
type ScopeReason string

// Scope reasons.
const (
	ScopeSelf         ScopeReason = "controller-itself"
	ScopeOptedIn      ScopeReason = "opted-in"
	ScopeOptedOut     ScopeReason = "opted-out"
	ScopeInvalidLabel ScopeReason = "invalid-enable-label" // not managed: a typo never opts in
	ScopeInProject    ScopeReason = "in-project"
	ScopeOutside      ScopeReason = "outside-project"
)

// Managed reports whether the reason means the container is managed.
func (s ScopeReason) Managed() bool { return s == ScopeOptedIn || s == ScopeInProject }

// Managed says whether c is managed, as a reason code. A container with an
// invalid LabelEnable value is not managed (ScopeInvalidLabel), so that a
// typo never silently opts a container in.
func (s Scope) Managed(c dockerwatch.Container) ScopeReason {
	if s.SelfID != "" && c.ID == s.SelfID {
		return ScopeSelf
	}
	if v, ok := c.Labels[LabelEnable]; ok {
		switch strings.ToLower(strings.TrimSpace(v)) {
		case "true", "1", "yes":
			return ScopeOptedIn
		case "false", "0", "no":
			return ScopeOptedOut
		default:
			return ScopeInvalidLabel
		}
	}
	if s.Project != "" && c.Project == s.Project {
		return ScopeInProject
	}
	return ScopeOutside
}

// Explain says what reason means for c, for humans.
func (s Scope) Explain(reason ScopeReason, c dockerwatch.Container) string {
	switch reason {
	case ScopeSelf:
		return "the controller itself"
	case ScopeOptedIn:
		return "opted in by label " + LabelEnable
	case ScopeOptedOut:
		return "opted out by label " + LabelEnable
	case ScopeInvalidLabel:
		return fmt.Sprintf("invalid value %q for label %s (want true or false)", c.Labels[LabelEnable], LabelEnable)
	case ScopeInProject:
		return "in the controller's compose project " + s.Project
	}
	return "outside the controller's compose project and not opted in"
}

// ServiceName returns the name that keys c's bundle: LabelService, else the
// compose service, else the container name (which is what c.Service holds
// for containers compose did not create). It must be a valid DNS label.
func ServiceName(c dockerwatch.Container) (string, error) {
	name, source := c.Service, "service name"
	if v := c.Labels[LabelService]; v != "" {
		name, source = v, "label "+LabelService
	}
	if err := certs.ValidateServiceName(name); err != nil {
		return "", fmt.Errorf("%s of container %s: %w (set label %s to a DNS label)", source, c.Name, err, LabelService)
	}
	return name, nil
}

// IdentityFor returns the identity c's bundle must carry: the service as the
// client identity, and every DNS name c answers to as server SANs, with the
// service name first. extra are SANs already present in a valid bundle of
// the same service (other replicas' names); keeping them stops two replicas
// of one service from reissuing each other's bundle in turn.
func IdentityFor(c dockerwatch.Container, service, trustDomain string, extra []string) certs.Identity {
	names := []string{service}
	seen := map[string]bool{service: true}
	for _, set := range [][]string{c.DNSNames(), extra} {
		for _, n := range set {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return certs.Identity{Service: service, DNSNames: names, TrustDomain: trustDomain}
}

// OwnerFor returns who must own c's bundle files. The second value explains
// a gap the operator should know about ("" when there is none).
func OwnerFor(c dockerwatch.Container) (certs.Owner, string, error) {
	owner := certs.Owner{UID: -1, GID: -1}
	groupRead := strings.EqualFold(c.Labels[LabelKeyGroupRead], "true")
	if v, ok := c.Labels[LabelKeyOwner]; ok {
		uid, gid, err := parseUIDGID(v)
		if err != nil {
			return owner, "", fmt.Errorf("label %s of container %s: %w", LabelKeyOwner, c.Name, err)
		}
		return certs.Owner{UID: uid, GID: gid, GroupRead: groupRead}, "", nil
	}
	if c.User == "" || c.User == "0" || c.User == "root" || c.User == "0:0" {
		return certs.Owner{UID: -1, GID: -1, GroupRead: groupRead}, "", nil
	}
	uid, gid, err := parseUIDGID(c.User)
	if err != nil {
		return owner, fmt.Sprintf("container runs as named user %q, which cannot be resolved from outside the image; keys stay root-owned and may be unreadable (set label %s=uid:gid)", c.User, LabelKeyOwner), nil
	}
	return certs.Owner{UID: uid, GID: gid, GroupRead: groupRead}, "", nil
}

// parseUIDGID parses "uid" or "uid:gid". A missing gid means the same as uid,
// which is what Docker does for a numeric user without a group. Both must
// be in 0 to 2^32-2: the kernel's ids are 32 bits, so a larger number would
// wrap to another user's, and 2^32-1 is chown's "leave unchanged".
func parseUIDGID(s string) (int, int, error) {
	u, g, hasGroup := strings.Cut(strings.TrimSpace(s), ":")
	uid, err := parseID(u)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a numeric uid[:gid]: %w", s, err)
	}
	if !hasGroup {
		return uid, uid, nil
	}
	gid, err := parseID(g)
	if err != nil {
		return 0, 0, fmt.Errorf("%q is not a numeric uid[:gid]: %w", s, err)
	}
	return uid, gid, nil
}

// maxID is the largest uid or gid accepted: 2^32-2.
const maxID = 1<<32 - 2

func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if n > maxID {
		return 0, fmt.Errorf("%d is out of range 0 to %d", n, uint64(maxID))
	}
	return int(n), nil
}

// BundleAction is what a reconcile must do to a service's bundle.
type BundleAction string

// Bundle actions, from cheapest to most expensive.
const (
	BundleKeep     BundleAction = "keep"      // valid as it is
	BundleFixPerms BundleAction = "fix-perms" // only modes/ownership are wrong
	BundleWriteCA  BundleAction = "write-ca"  // only ca.crt is stale (CA rollover)
	// BundleRelink: files are hard-linked from elsewhere in the volume but
	// their content is valid; the same bytes go into fresh files.
	BundleRelink BundleAction = "relink"
	BundleIssue  BundleAction = "issue" // a new server+client pair is needed
)

// DecideBundle maps validation findings to one action and the reason that
// drove it. Findings come ordered by severity from certs.Validate, so the
// first finding that forces a reissue names the reason. unsafe are the
// bundle's unsafe files: when every one is only hard-linked and nothing
// else forces a reissue, the bundle is relinked. A tenant that links
// another service's key into its own directory thus damages its own
// bundle (whose key then mismatches), not the other service's.
func DecideBundle(findings []certs.Finding, unsafe []certs.UnsafeFile) (BundleAction, certs.Reason) {
	var caOnly, permsOnly, relink certs.Reason
	linkedOnly := !slices.ContainsFunc(unsafe, func(u certs.UnsafeFile) bool { return !u.Linked })
	for _, f := range findings {
		switch {
		case f.Reason == certs.ReasonUnsafeFile && linkedOnly:
			relink = f.Reason
			continue
		}
		switch f.Reason {
		case certs.ReasonTrustBundleStale:
			if caOnly == "" {
				caOnly = f.Reason
			}
		case certs.ReasonBadPermissions:
			if permsOnly == "" {
				permsOnly = f.Reason
			}
		default:
			return BundleIssue, f.Reason
		}
	}
	switch {
	case relink != "":
		// Fresh files with modes and owner applied; a stale ca.crt follows
		// on the next pass.
		return BundleRelink, relink
	case caOnly != "":
		// A new generation is written for ca.crt; it also re-applies modes.
		return BundleWriteCA, caOnly
	case permsOnly != "":
		return BundleFixPerms, permsOnly
	}
	return BundleKeep, ""
}

// OwnerDrift reports whether the keys of a bundle read from disk are not
// owned by the owner the container needs (e.g. its image now runs as uid
// 1000, or crank.security.key-owner was added): the process could not read
// its own 0600 key. Unknown owners (-1) on either side never count.
func OwnerDrift(b *certs.BundleFiles, o certs.Owner) bool {
	if b == nil || b.Generation == "" {
		return false
	}
	differs := func(uid, gid int) bool {
		return (o.UID >= 0 && uid >= 0 && uid != o.UID) || (o.GID >= 0 && gid >= 0 && gid != o.GID)
	}
	return differs(b.ServerKeyUID, b.ServerKeyGID) || differs(b.ClientKeyUID, b.ClientKeyGID)
}

// StaleProcess reports whether a running container's process started before
// its current bundle was written, so it serves old certificates or none.
// Python servers such as uvicorn read their certs once at start.
func StaleProcess(c dockerwatch.Container, bundleWrittenAt time.Time) (bool, string) {
	if c.State != dockerwatch.StateRunning || c.StartedAt.IsZero() || bundleWrittenAt.IsZero() {
		return false, ""
	}
	if !bundleWrittenAt.After(c.StartedAt) {
		return false, ""
	}
	return true, fmt.Sprintf("bundle written at %s, after the process started at %s",
		bundleWrittenAt.UTC().Format(time.RFC3339), c.StartedAt.UTC().Format(time.RFC3339))
}

// NextRenewal returns when the bundle must be renewed: the earlier of the
// two leaves' renewal points, plus jitter so a stack whose bundles were
// issued together does not renew (and restart) all at once.
func NextRenewal(serverRenewAt, clientRenewAt time.Time, jitter time.Duration) time.Time {
	at := serverRenewAt
	if clientRenewAt.Before(at) {
		at = clientRenewAt
	}
	return at.Add(jitter)
}
