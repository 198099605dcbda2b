package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// runHealthcheck is `controller healthcheck`: the compose healthcheck of the
// controller's own FROM-scratch image, where there is no curl. It asks the
// local /readyz (ready = connected to Docker with the initial list done) and
// exits 0 or 1.
func runHealthcheck(args []string) int {
	listen := lookupEnv("CRANK_LISTEN")
	if len(args) > 0 {
		listen = args[0]
	}
	if listen == "" {
		listen = ":9090"
	}
	url, err := readyURL(listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		return 1
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintf(os.Stderr, "healthcheck: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(os.Stderr, "healthcheck: %s: %s", resp.Status, body)
		return 1
	}
	return 0
}

// readyURL turns a listen address such as ":9090" or "0.0.0.0:9090" into
// the loopback URL of /readyz.
func readyURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
