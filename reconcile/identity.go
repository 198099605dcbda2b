package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// This file decides who may hold an identity. Labels, aliases and
// hostnames are claims a container makes about itself, and an image can
// make them for it; the only selectors a workload cannot set are the
// compose project and service that the operator's compose file gives it
// (or the name of a container compose did not create), and the first of
// those to claim a name keeps it. Pure; see identity_test.go.

// IdentityReason is the code of an identity finding.
type IdentityReason string

// Identity findings. Each is reported in status and metrics, and logged.
const (
	// IdentityConflict: the container claims an identity that another
	// owner (or the controller itself) holds. It gets no bundle.
	IdentityConflict IdentityReason = "identity-conflict"
	// LabelFromImage: a crank.security.* (or compose) label's value came
	// from the image, not from the operator; it is ignored.
	LabelFromImage IdentityReason = "label-from-image"
	// AliasConflict: a network alias or hostname names another identity;
	// it is left out of the server certificate.
	AliasConflict IdentityReason = "alias-conflict"
	// OwnerConflict: replicas of one service need different key owners;
	// the keys keep the owner they have rather than flip between them.
	OwnerConflict IdentityReason = "owner-conflict"
)

// IdentityFinding is one identity finding and its message for humans.
type IdentityFinding struct {
	Reason  IdentityReason
	Message string
}

// provenanceChecked are the label prefixes whose image-supplied values are
// ignored: the controller's own, and compose's, which decide the project a
// container belongs to (and so what it may claim).
var provenanceChecked = []string{"crank.security.", "com.docker.compose."}

// TrustedLabels returns c with every checked label that its image supplied
// removed, and one finding per label removed. A value the operator set that
// equals the image's cannot be told apart from it and is removed too: the
// message says how to keep it. trustImage keeps image labels, for stacks
// that build their own images.
func TrustedLabels(c dockerwatch.Container, trustImage bool) (dockerwatch.Container, []IdentityFinding) {
	if trustImage || len(c.ImageLabels) == 0 {
		return c, nil
	}
	var findings []IdentityFinding
	labels := maps.Clone(c.Labels)
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		iv, fromImage := c.ImageLabels[k]
		if !fromImage || iv != c.Labels[k] || !checkedLabel(k) {
			continue
		}
		delete(labels, k)
		findings = append(findings, IdentityFinding{Reason: LabelFromImage, Message: fmt.Sprintf(
			"label %s=%q comes from image %s and is ignored (set it in the compose file or with docker run, or start the controller with --trust-image-labels)",
			k, iv, c.Image)})
	}
	if len(findings) == 0 {
		return c, nil
	}
	// Without its image-supplied compose labels the container is one that
	// compose did not create, as FromInspect models those.
	_, hadProject := c.Labels[dockerwatch.LabelComposeProject]
	if _, kept := labels[dockerwatch.LabelComposeProject]; hadProject && !kept {
		c.Project, c.Service = "", c.Name
	}
	c.Labels = labels
	return c, findings
}

func checkedLabel(k string) bool {
	for _, p := range provenanceChecked {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

// ClaimantOf returns the owner c claims an identity as: its compose
// project and service, or, for a container compose did not create, its
// name. Replicas of one compose service are one owner.
func ClaimantOf(c dockerwatch.Container) state.IdentityOwner {
	if c.Project != "" {
		return state.IdentityOwner{Key: "compose:" + c.Project + "/" + c.Service, Project: c.Project, Service: c.Service, Container: c.Name}
	}
	return state.IdentityOwner{Key: "container:" + c.Name, Container: c.Name}
}

// Describe names an owner for a human: "compose service crank/platform
// (first claimed by crank_platform_1)" or "container legacy".
func Describe(o state.IdentityOwner) string {
	if o.Project != "" {
		s := fmt.Sprintf("compose service %s/%s", o.Project, o.Service)
		if o.Container != "" {
			s += fmt.Sprintf(" (first claimed by %s)", o.Container)
		}
		return s
	}
	return "container " + o.Container
}

// JudgeClaim decides whether claimant may hold identity name, given its
// owner on record and whether the name is reserved for the controller.
// ok is false with an IdentityConflict finding when it may not.
func JudgeClaim(name string, claimant, owner state.IdentityOwner, reserved string) (IdentityFinding, bool) {
	if reserved != "" {
		return IdentityFinding{Reason: IdentityConflict, Message: fmt.Sprintf(
			"identity %s is reserved for %s; %s gets no bundle (set %s to another name)", name, reserved, Describe(claimant), LabelService)}, false
	}
	if owner.Key == "" || owner.Key == claimant.Key {
		return IdentityFinding{}, true
	}
	return IdentityFinding{Reason: IdentityConflict, Message: fmt.Sprintf(
		"identity %s belongs to %s; %s gets no bundle and no key ownership (README: Identity ownership)",
		name, Describe(owner), Describe(claimant))}, false
}

// DropForeignNames removes from names every name that is another
// identity's (taken reports that), keeping own, the identity itself. It
// returns the kept names and one AliasConflict finding per dropped name.
func DropForeignNames(names []string, own string, taken func(name string) (owner string, ok bool)) ([]string, []IdentityFinding) {
	kept := make([]string, 0, len(names))
	var findings []IdentityFinding
	for _, n := range names {
		if n == own {
			kept = append(kept, n)
			continue
		}
		if owner, ok := taken(n); ok {
			findings = append(findings, IdentityFinding{Reason: AliasConflict, Message: fmt.Sprintf(
				"name %s (a network alias, hostname or container name) belongs to %s; left out of %s's certificate", n, owner, own)})
			continue
		}
		kept = append(kept, n)
	}
	return kept, findings
}
