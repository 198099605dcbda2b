package swarm

import (
	"fmt"
	"strings"

	"github.com/crank-platform/crank-mtls-controller/certs"
	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/reconcile"
	"github.com/crank-platform/crank-mtls-controller/state"
)

// This file decides which services are managed and what identity each
// holds, by handing the compose rules a service in the shape of a
// container: the same labels mean the same thing in both modes. Pure.

// AsContainer is svc as the compose decisions see a container: its
// service labels as the labels (the only ones read in swarm mode: an
// image's LABELs reach containers, never the service), its stack as the
// project and its name within the stack as the compose service, so
// reconcile.Scope, ServiceName, OwnerFor, IdentityFor and Policy.DesiredFor
// apply unchanged.
func AsContainer(svc dockerwatch.Service) dockerwatch.Container {
	nets := make(map[string]dockerwatch.Network, len(svc.Networks))
	for _, n := range svc.Networks {
		nets[n.ID] = dockerwatch.Network{NetworkID: n.ID, Aliases: n.Aliases}
	}
	return dockerwatch.Container{
		ID: svc.ID, Name: svc.Name, Project: svc.Stack, Service: svc.ShortName(),
		Image: svc.Image, Labels: svc.Labels, Env: svc.Env, Hostname: svc.Hostname, User: svc.User,
		HealthStartPeriod: svc.HealthStartPeriod, Networks: nets, ExposedPorts: svc.TargetPorts,
	}
}

// Scope says which services are managed: those of the controller's own
// stack, and those labelled crank.security.enable=true; never the
// controller's own service. The reasons are reconcile's.
type Scope struct {
	Stack         string // the controller's stack namespace; "" = opted-in only
	SelfServiceID string
}

// Managed applies the compose scope rules to svc.
func (s Scope) Managed(svc dockerwatch.Service) (reconcile.ScopeReason, string) {
	sc := reconcile.Scope{Project: s.Stack, SelfID: s.SelfServiceID}
	c := AsContainer(svc)
	r := sc.Managed(c)
	return r, sc.Explain(r, c)
}

// IdentityName is the identity svc's bundle carries: crank.security.service,
// else the service's name within its stack. It must be a DNS label.
func IdentityName(svc dockerwatch.Service) (string, error) {
	return reconcile.ServiceName(AsContainer(svc))
}

// Claimant is the owner svc claims an identity as. A swarm service is one
// owner for all its tasks, and keeps its identity across task
// replacements, updates and a remove-and-deploy under the same name.
func Claimant(svc dockerwatch.Service) state.IdentityOwner {
	return state.IdentityOwner{Key: "swarm:" + svc.Name, Project: svc.Stack, Service: svc.ShortName(), Container: svc.Name}
}

// describe names an owner for a human.
func describe(o state.IdentityOwner) string {
	if name, ok := strings.CutPrefix(o.Key, "swarm:"); ok {
		return "swarm service " + name
	}
	return reconcile.Describe(o)
}

// JudgeClaim applies the one-owner rule: claimant may hold identity name
// when nobody else owns it and it is not reserved. ok is false with an
// identity-conflict finding otherwise.
func JudgeClaim(name string, claimant, owner state.IdentityOwner, reserved string) (reconcile.IdentityFinding, bool) {
	switch {
	case reserved != "":
		return reconcile.IdentityFinding{Reason: reconcile.IdentityConflict, Message: fmt.Sprintf(
			"identity %s is reserved for %s; %s gets no bundle (set %s to another name)", name, reserved, describe(claimant), reconcile.LabelService)}, false
	case owner.Key == "" || owner.Key == claimant.Key:
		return reconcile.IdentityFinding{}, true
	}
	return reconcile.IdentityFinding{Reason: reconcile.IdentityConflict, Message: fmt.Sprintf(
		"identity %s belongs to %s; %s gets no bundle (README: Identity ownership)", name, describe(owner), describe(claimant))}, false
}

// WantedIdentity is the certificate identity svc needs: the identity as
// client CN and first SAN, then every name peers reach its tasks by (its
// name within the stack, network aliases, a configured hostname) and
// localhost, without the names taken returns as another identity's.
func WantedIdentity(svc dockerwatch.Service, identity, trustDomain string, taken func(string) (string, bool)) (certs.Identity, []reconcile.IdentityFinding) {
	id := reconcile.IdentityFor(AsContainer(svc), identity, trustDomain, nil)
	var findings []reconcile.IdentityFinding
	id.DNSNames, findings = reconcile.DropForeignNames(id.DNSNames, identity, taken)
	return id, findings
}
