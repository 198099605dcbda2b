package dockerwatch

import (
	"maps"

	"github.com/docker/docker/api/types/swarm"
)

// ServiceChange is what the controller changes in a service's spec. Each
// field left at its zero value leaves that part of the spec alone.
type ServiceChange struct {
	// Secrets, when SetSecrets is true, replaces the service's secret
	// references. Swarm mounts each into every new task; changing them
	// is a rolling update.
	Secrets    []SecretRef
	SetSecrets bool
	// ForceUpdate bumps the task template's counter: a rolling update
	// that replaces every task with nothing else changed (a "restart").
	ForceUpdate bool
	// Labels are set on the service (deploy.labels); an empty value
	// removes the label. Service labels do not restart tasks.
	Labels map[string]string
	// UpdateOrder sets update_config.order (start-first or stop-first);
	// FailureAction sets update_config.failure_action (e.g. rollback).
	UpdateOrder   string
	FailureAction string
}

// ApplyChange applies ch to spec in place. Pure; the only place that
// edits an engine spec, so what an update touches is tested in one spot.
func ApplyChange(spec *swarm.ServiceSpec, ch ServiceChange) {
	if ch.SetSecrets && spec.TaskTemplate.ContainerSpec != nil {
		spec.TaskTemplate.ContainerSpec.Secrets = toSecretRefs(ch.Secrets)
	}
	if ch.ForceUpdate {
		spec.TaskTemplate.ForceUpdate++
	}
	if len(ch.Labels) > 0 {
		labels := maps.Clone(spec.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		for k, v := range ch.Labels {
			if v == "" {
				delete(labels, k)
				continue
			}
			labels[k] = v
		}
		spec.Labels = labels
	}
	if ch.UpdateOrder != "" || ch.FailureAction != "" {
		uc := swarm.UpdateConfig{Parallelism: 1}
		if spec.UpdateConfig != nil {
			uc = *spec.UpdateConfig
		}
		if ch.UpdateOrder != "" {
			uc.Order = ch.UpdateOrder
		}
		if ch.FailureAction != "" {
			uc.FailureAction = ch.FailureAction
		}
		spec.UpdateConfig = &uc
	}
}
