package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const swarmBody = `{"api_version":"v1","nodes":[{"ID":"n1","Hostname":"manager-1","Role":"manager","State":"ready"}],
"services":[{"service":"demo_web","identity":"web","generation":3,"mounted_generation":3,"update_state":"completed","rollout":"current","observed":"mtls",
"tasks":[{"task":"demo_web.1","task_id":"t1","node_id":"n1","node":"manager-1","state":"running","generation":3,"observed":"mtls","served_fingerprint":"0123456789abcdef"}]}]}`

func TestSwarmStatusPrintsTasksWithTheirNode(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != pathSwarm {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(swarmBody))
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	code := runSwarmStatus([]string{"--url", srv.URL}, &out, &errOut, func(string) string { return "" })
	if code != statusOK {
		t.Fatalf("got exit %d (%s), want 0", code, errOut.String())
	}
	for _, want := range []string{"1 nodes, 1 services", "demo_web", "node manager-1", "gen 3", "0123456789ab"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("got\n%s\nwant it to contain %q", out.String(), want)
		}
	}
}

func TestSwarmStatusUsage(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args []string
		want int // exit code
	}{
		"should refuse an unknown output":  {args: []string{"-o", "yaml"}, want: statusUsage},
		"should refuse a URL without host": {args: []string{"--url", "http://"}, want: statusUsage},
		"should say when nothing answers":  {args: []string{"--url", "http://127.0.0.1:1", "--timeout", "1s"}, want: statusUsage},
		"should print help and exit 0":     {args: []string{"-h"}, want: statusOK},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			if got := runSwarmStatus(tc.args, &out, &errOut, func(string) string { return "" }); got != tc.want {
				t.Errorf("got exit %d (%s), want %d", got, errOut.String(), tc.want)
			}
		})
	}
}
