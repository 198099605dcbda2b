package dockerwatch

import (
	"errors"
	"reflect"
	"testing"

	"github.com/docker/docker/api/types/container"
)

func TestBuildRecreateSpecLabels(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		opts   []oldOpt
		add    map[string]string
		remove []string
		// want is the new container's labels; wantErr that it is refused.
		want    map[string]string
		wantErr bool
	}{
		"should add and overwrite labels and keep compose's": {
			add: map[string]string{"crank.security.observed": "tls"},
			want: map[string]string{"com.docker.compose.project": "app", "com.docker.compose.service": "web",
				"com.docker.compose.config-hash": "c0ffee", "crank.security.observed": "tls"},
		},
		"should remove labels, including ones that are not there": {
			remove: []string{"crank.security.observed", "crank.never-there"},
			want: map[string]string{"com.docker.compose.project": "app", "com.docker.compose.service": "web",
				"com.docker.compose.config-hash": "c0ffee"},
		},
		"should let an added label win over a removed one of the same key": {
			add: map[string]string{"crank.a": "1"}, remove: []string{"crank.a"},
			want: map[string]string{"com.docker.compose.project": "app", "com.docker.compose.service": "web",
				"com.docker.compose.config-hash": "c0ffee", "crank.security.observed": "plaintext", "crank.a": "1"},
		},
		"should start from no labels at all": {
			opts: []oldOpt{withConfig(func(c *container.Config) { c.Labels = nil })},
			add:  map[string]string{"crank.a": "1"},
			want: map[string]string{"crank.a": "1"},
		},
		"should refuse to change compose's config hash": {
			add: map[string]string{"com.docker.compose.config-hash": "other"}, wantErr: true,
		},
		"should refuse to remove a compose label": {
			remove: []string{"com.docker.compose.project"}, wantErr: true,
		},
		"should refuse an empty label key": {
			add: map[string]string{"": "x"}, wantErr: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			spec, err := buildRecreateSpec(oldFixture(tc.opts...), "", tc.add, tc.remove)
			if tc.wantErr {
				if !errors.Is(err, errNotRecreatable) {
					t.Fatalf("got error %v, want one wrapping %v", err, errNotRecreatable)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if !reflect.DeepEqual(spec.Config.Labels, tc.want) {
				t.Errorf("got labels %v, want %v", spec.Config.Labels, tc.want)
			}
		})
	}
}

func TestBuildRecreateSpecRefusesIncompleteInspectResponses(t *testing.T) {
	t.Parallel()
	for name, opt := range map[string]oldOpt{
		"should refuse a response without the base":         func(r *container.InspectResponse) { r.ContainerJSONBase = nil },
		"should refuse a response without Config":           func(r *container.InspectResponse) { r.Config = nil },
		"should refuse a response without HostConfig":       func(r *container.InspectResponse) { r.HostConfig = nil },
		"should refuse a container without a name":          func(r *container.InspectResponse) { r.Name = "/" },
		"should refuse a response with only zero values in": func(r *container.InspectResponse) { *r = container.InspectResponse{} },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := buildRecreateSpec(oldFixture(opt), "", nil, nil)
			if !errors.Is(err, errNotRecreatable) {
				t.Errorf("got error %v, want one wrapping %v", err, errNotRecreatable)
			}
		})
	}
}
