package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

const healthcheckTimeout = 3 * time.Second

// healthcheck is the compose HEALTHCHECK for a FROM-scratch image (no curl).
// Unlike the seed's `curl https || curl http`, it presents the client cert and
// verifies the server against ca.crt, and it only falls back to plain HTTP
// when ALLOW_HTTP_HEALTHCHECK says so, because that fallback is a downgrade
// that would otherwise hide a broken TLS setup behind a green check.
func healthcheck(getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 1
	}
	httpsURL := "https://localhost:" + cfg.HTTPSPort + "/health"
	tlsCfg, err := clientTLSConfig(cfg.CertsDir, "localhost", false)
	if err == nil {
		err = getOK(&http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true}, httpsURL)
	}
	if err == nil {
		fmt.Fprintf(stdout, "healthy: %s\n", httpsURL)
		return 0
	}
	fmt.Fprintf(stderr, "unhealthy: %s: %v\n", httpsURL, err)
	if !cfg.AllowHTTPHealthcheck {
		return 1
	}
	httpURL := "http://localhost:" + cfg.HTTPPort + "/health"
	if err := getOK(&http.Transport{DisableKeepAlives: true}, httpURL); err != nil {
		fmt.Fprintf(stderr, "unhealthy: %s: %v\n", httpURL, err)
		return 1
	}
	fmt.Fprintf(stdout, "healthy over plain HTTP (downgrade allowed by ALLOW_HTTP_HEALTHCHECK): %s\n", httpURL)
	return 0
}

func getOK(tr *http.Transport, url string) error {
	ctx, cancel := context.WithTimeout(context.Background(), healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}

// catFile prints one file; the e2e harness reads volumes with it because a
// scratch image has no cat.
func catFile(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: testservice cat <path>")
		return 2
	}
	f, err := os.Open(args[0])
	if err != nil {
		fmt.Fprintf(stderr, "cat: %v\n", err)
		return 1
	}
	defer f.Close()
	if _, err := io.Copy(stdout, f); err != nil {
		fmt.Fprintf(stderr, "cat: %v\n", err)
		return 1
	}
	return 0
}

// writeFile writes base64 data to path with an octal mode, creating parent
// dirs; the e2e harness seeds volumes with it (e.g. a corrupt bundle or an
// operator-provided CA).
func writeFile(args []string, stderr io.Writer) int {
	if len(args) != 3 {
		fmt.Fprintln(stderr, "usage: testservice write <path> <octal-mode> <base64-data>")
		return 2
	}
	mode, err := strconv.ParseUint(args[1], 8, 32)
	if err != nil || mode > 0o777 {
		fmt.Fprintf(stderr, "write: mode %q: want octal permission bits like 0644\n", args[1])
		return 2
	}
	data, err := base64.StdEncoding.DecodeString(args[2])
	if err != nil {
		fmt.Fprintf(stderr, "write: data: %v\n", err)
		return 2
	}
	if err := os.MkdirAll(filepath.Dir(args[0]), 0o755); err != nil {
		fmt.Fprintf(stderr, "write: %v\n", err)
		return 1
	}
	if err := os.WriteFile(args[0], data, os.FileMode(mode)); err != nil {
		fmt.Fprintf(stderr, "write: %v\n", err)
		return 1
	}
	// WriteFile's mode is filtered by the umask (and ignored for an existing
	// file); the caller asked for exact bits.
	if err := os.Chmod(args[0], os.FileMode(mode)); err != nil {
		fmt.Fprintf(stderr, "write: %v\n", err)
		return 1
	}
	return 0
}
