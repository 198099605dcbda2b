package dockerwatch

import (
	"reflect"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
)

func TestFromServiceKeepsWhatTheControllerReadsAndChanges(t *testing.T) {
	t.Parallel()
	replicas := uint64(2)
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	in := swarm.Service{
		ID:   "svc1",
		Meta: swarm.Meta{Version: swarm.Version{Index: 42}},
		Spec: swarm.ServiceSpec{
			Annotations: swarm.Annotations{Name: "demo_web", Labels: map[string]string{LabelStackNamespace: "demo", "crank.security.level": "mtls"}},
			TaskTemplate: swarm.TaskSpec{
				ContainerSpec: &swarm.ContainerSpec{
					Image: "web:1", User: "1000:1000", Env: []string{"SERVICE_HTTPS_PORT=8443", "A=b=c"},
					Healthcheck: &container.HealthConfig{StartPeriod: 5 * time.Second},
					Secrets: []*swarm.SecretReference{{SecretID: "sec1", SecretName: "crank-web-tls.key-1",
						File: &swarm.SecretReferenceFileTarget{Name: "/certs/web/tls.key", UID: "1000", GID: "1000", Mode: 0o400}}},
				},
				Networks:    []swarm.NetworkAttachmentConfig{{Target: "net1", Aliases: []string{"web"}}},
				ForceUpdate: 3,
			},
			Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
			UpdateConfig: &swarm.UpdateConfig{Order: "start-first", FailureAction: "rollback"},
			EndpointSpec: &swarm.EndpointSpec{Ports: []swarm.PortConfig{{TargetPort: 9090, Protocol: "tcp", PublishMode: swarm.PortConfigPublishModeHost}}},
		},
		PreviousSpec: &swarm.ServiceSpec{TaskTemplate: swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{
			Secrets: []*swarm.SecretReference{{SecretID: "sec0", SecretName: "crank-web-tls.key-0"}}}}},
		UpdateStatus: &swarm.UpdateStatus{State: swarm.UpdateStateUpdating, StartedAt: &started, Message: "update in progress"},
	}
	got := FromService(in)
	want := Service{
		ID: "svc1", Name: "demo_web", Version: 42, Stack: "demo",
		Labels: map[string]string{LabelStackNamespace: "demo", "crank.security.level": "mtls"},
		Image:  "web:1", User: "1000:1000", Env: map[string]string{"SERVICE_HTTPS_PORT": "8443", "A": "b=c"},
		HealthStartPeriod: 5 * time.Second,
		Secrets:           []SecretRef{{SecretID: "sec1", SecretName: "crank-web-tls.key-1", Target: "/certs/web/tls.key", UID: "1000", GID: "1000", Mode: 0o400}},
		PreviousSecrets:   []SecretRef{{SecretID: "sec0", SecretName: "crank-web-tls.key-0"}},
		Networks:          []ServiceNetwork{{ID: "net1", Aliases: []string{"web"}}},
		TargetPorts:       []Port{{Port: 9090, Proto: "tcp"}}, HostPorts: true,
		Replicas: 2, ForceUpdate: 3, UpdateOrder: "start-first", FailureAction: "rollback",
		UpdateState: "updating", UpdateMessage: "update in progress", UpdateStartedAt: started,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	if got.ShortName() != "web" {
		t.Errorf("got short name %q, want web", got.ShortName())
	}
}

func TestFromServiceIsTotalOnAnEmptyService(t *testing.T) {
	t.Parallel()
	got := FromService(swarm.Service{ID: "x"})
	if got.ID != "x" || got.Secrets != nil || got.Global || got.Replicas != 0 {
		t.Errorf("got %+v, want an empty service with ID x", got)
	}
}

func TestFromTaskKeepsOwnAddressesAndNotTheRoutingMesh(t *testing.T) {
	t.Parallel()
	in := swarm.Task{
		ID: "t1", ServiceID: "svc1", Slot: 2, NodeID: "node1", DesiredState: swarm.TaskStateRunning,
		Status: swarm.TaskStatus{State: swarm.TaskStateRunning, ContainerStatus: &swarm.ContainerStatus{ContainerID: "c1"}},
		Spec:   swarm.TaskSpec{ContainerSpec: &swarm.ContainerSpec{Secrets: []*swarm.SecretReference{{SecretID: "s", SecretName: "n"}}}},
		NetworksAttachments: []swarm.NetworkAttachment{
			{Network: swarm.Network{ID: "ing", Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: "ingress"}, Ingress: true}}, Addresses: []string{"10.0.0.4/24"}},
			{Network: swarm.Network{ID: "n1", Spec: swarm.NetworkSpec{Annotations: swarm.Annotations{Name: "app"}}}, Addresses: []string{"10.251.0.7/24", "fd00::7/64"}},
		},
	}
	got := FromTask(in)
	if !got.Running() || got.ContainerID != "c1" || got.Slot != 2 || got.NodeID != "node1" {
		t.Errorf("got %+v, want a running task c1 in slot 2 on node1", got)
	}
	want := map[string]Network{"app": {NetworkID: "n1", IPAddress: "10.251.0.7", IPv6: "fd00::7"}}
	if !reflect.DeepEqual(got.Networks, want) {
		t.Errorf("got networks %+v, want %+v (no ingress)", got.Networks, want)
	}
	if len(got.Secrets) != 1 || got.Secrets[0].SecretID != "s" {
		t.Errorf("got secrets %+v, want the task spec's one reference", got.Secrets)
	}
}

func TestShortName(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		name, stack string
		want        string // the name within the stack
	}{
		"should strip the stack namespace":         {name: "demo_web", stack: "demo", want: "web"},
		"should keep a name outside any stack":     {name: "web", want: "web"},
		"should keep a name of another stack":      {name: "other_web", stack: "demo", want: "other_web"},
		"should keep a name that is only a prefix": {name: "demo_", stack: "demo", want: "demo_"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := (Service{Name: tc.name, Stack: tc.stack}).ShortName(); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
