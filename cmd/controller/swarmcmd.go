package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/crank-platform/crank-mtls-controller/dockerwatch"
	"github.com/crank-platform/crank-mtls-controller/swarm"
)

// pathSwarm is swarm mode's status endpoint (swarm.StatusHandler).
const pathSwarm = "/api/v1/swarm"

// swarmDoc is the body of GET /api/v1/swarm.
type swarmDoc struct {
	APIVersion string                `json:"api_version"`
	Nodes      []dockerwatch.Node    `json:"nodes"`
	Services   []swarm.ServiceStatus `json:"services"`
}

// runSwarmStatus is `controller swarm`: every managed swarm service with
// its generations and rollout, and each task with the node it runs on.
// Exit 0, or 2 on usage or connection errors.
func runSwarmStatus(args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	opts, err := parseSwarmArgs(args, stderr, getenv)
	if errors.Is(err, flag.ErrHelp) {
		return statusOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "controller swarm: %v\n", err)
		return statusUsage
	}
	body, err := fetchSwarm(opts)
	if err != nil {
		fmt.Fprintf(stderr, "controller swarm: %v\n", err)
		return statusUsage
	}
	if opts.output == "json" {
		var out bytes.Buffer
		if err := json.Indent(&out, body, "", "  "); err != nil {
			fmt.Fprintf(stderr, "controller swarm: %v\n", err)
			return statusUsage
		}
		fmt.Fprintln(stdout, strings.TrimRight(out.String(), "\n"))
		return statusOK
	}
	var doc swarmDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		fmt.Fprintf(stderr, "controller swarm: decoding the answer of %s: %v\n", opts.url, err)
		return statusUsage
	}
	printSwarmTable(stdout, doc)
	return statusOK
}

func parseSwarmArgs(args []string, stderr io.Writer, getenv func(string) string) (statusOptions, error) {
	fs := flag.NewFlagSet("controller swarm", flag.ContinueOnError)
	fs.SetOutput(stderr)
	opts := statusOptions{}
	addConnectionFlags(fs, &opts, getenv)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: controller swarm [--url URL] [-o table|json] [--tls-dir DIR]\n\n"+
			"Swarm mode: every managed service with its bundle generations and rollout, each task with its node.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	return opts, checkConnectionFlags(fs, opts)
}

func fetchSwarm(opts statusOptions) ([]byte, error) {
	client, err := statusClient(opts)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), opts.timeout)
	defer cancel()
	endpoint := strings.TrimRight(opts.url, "/") + pathSwarm
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("building request: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, explainFetchError(opts, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s (is the controller in swarm mode?)", endpoint, resp.Status)
	}
	return body, nil
}

// printSwarmTable prints one line per service and, under it, one per task.
func printSwarmTable(w io.Writer, doc swarmDoc) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "%d nodes, %d services\n\n", len(doc.Nodes), len(doc.Services))
	fmt.Fprintln(tw, "SERVICE\tIDENTITY\tGENERATION\tMOUNTED\tUPDATE\tROLLOUT\tOBSERVED\tDEGRADED")
	for _, s := range doc.Services {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", clean(s.Service), clean(s.Identity), s.Generation, s.Mounted,
			dash(clean(s.UpdateState)), dash(clean(s.Rollout)), dash(clean(s.Observed)), dash(clean(s.Degraded)))
		for _, t := range s.Tasks {
			served := t.Served
			if len(served) > 12 {
				served = served[:12]
			}
			fmt.Fprintf(tw, "  %s\tnode %s\t%s\tgen %d\t%s\t%s\t\t\n", clean(t.Task), dash(clean(t.Node)), clean(t.State), t.Generation,
				dash(clean(t.Observed)), dash(served))
		}
	}
	_ = tw.Flush()
}
