package dockerwatch

import (
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/swarm"
)

func baseSpec() swarm.ServiceSpec {
	return swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: "web", Labels: map[string]string{"keep": "1", "drop": "x"}},
		TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Image:   "web:1",
			Secrets: []*swarm.SecretReference{{SecretID: "old", SecretName: "old"}},
		}, ForceUpdate: 1},
		UpdateConfig: &swarm.UpdateConfig{Parallelism: 2, Order: "stop-first"},
	}
}

func TestApplyChange(t *testing.T) {
	t.Parallel()
	ref := SecretRef{SecretID: "new", SecretName: "crank-web-tls.crt-2", Target: "/certs/web/tls.crt", UID: "0", GID: "0", Mode: 0o444}
	tests := map[string]struct {
		ch   ServiceChange
		want func(s *swarm.ServiceSpec) // edits baseSpec() into the expected spec
	}{
		"should change nothing for an empty change": {
			want: func(*swarm.ServiceSpec) {}},
		"should replace the secret references and nothing else": {
			ch: ServiceChange{SetSecrets: true, Secrets: []SecretRef{ref}},
			want: func(s *swarm.ServiceSpec) {
				s.TaskTemplate.ContainerSpec.Secrets = []*swarm.SecretReference{{SecretID: "new", SecretName: "crank-web-tls.crt-2",
					File: &swarm.SecretReferenceFileTarget{Name: "/certs/web/tls.crt", UID: "0", GID: "0", Mode: 0o444}}}
			}},
		"should bump ForceUpdate for a restart": {
			ch:   ServiceChange{ForceUpdate: true},
			want: func(s *swarm.ServiceSpec) { s.TaskTemplate.ForceUpdate = 2 }},
		"should set and remove service labels": {
			ch: ServiceChange{Labels: map[string]string{"crank.security.observed": "plain", "drop": ""}},
			want: func(s *swarm.ServiceSpec) {
				s.Labels = map[string]string{"keep": "1", "crank.security.observed": "plain"}
			}},
		"should set the update order and failure action, keeping the rest of update_config": {
			ch: ServiceChange{UpdateOrder: UpdateStartFirst, FailureAction: "rollback"},
			want: func(s *swarm.ServiceSpec) {
				s.UpdateConfig = &swarm.UpdateConfig{Parallelism: 2, Order: "start-first", FailureAction: "rollback"}
			}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, want := baseSpec(), baseSpec()
			ApplyChange(&got, tc.ch)
			tc.want(&want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

func TestApplyChangeCreatesAnUpdateConfigWithParallelismOne(t *testing.T) {
	t.Parallel()
	s := baseSpec()
	s.UpdateConfig = nil
	ApplyChange(&s, ServiceChange{UpdateOrder: UpdateStartFirst})
	// Parallelism 0 would mean "all at once": a rolling update must not.
	if s.UpdateConfig == nil || s.UpdateConfig.Parallelism != 1 || s.UpdateConfig.Order != "start-first" {
		t.Errorf("got update config %+v, want parallelism 1 and start-first", s.UpdateConfig)
	}
}
