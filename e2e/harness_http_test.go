//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HTTPResult is one response fetched by HTTPGet.
type HTTPResult struct {
	Status int
	Body   []byte
	TLS    *tls.ConnectionState // nil over plain HTTP
}

// ServerCertSHA256 is the hex SHA-256 of the served leaf ("" over HTTP).
func (r *HTTPResult) ServerCertSHA256() string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return ""
	}
	sum := sha256.Sum256(r.TLS.PeerCertificates[0].Raw)
	return hex.EncodeToString(sum[:])
}

// HTTPGet fetches url (http or https by IP) from the host. It dials only
// addresses on networks this run created, never follows redirects, never
// reuses connections (each call is a fresh handshake) and caps the body at
// 1 MiB. tlsCfg may be nil for plain HTTP; set its ServerName when the URL
// host is an IP. Errors are returned, not fatal, so it fits inside WaitFor.
func (h *Harness) HTTPGet(ctx context.Context, url string, tlsCfg *tls.Config) (*HTTPResult, error) {
	tr := &http.Transport{DialContext: h.dialTestNetwork, TLSClientConfig: tlsCfg, DisableKeepAlives: true}
	c := &http.Client{Transport: tr, Timeout: 5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("reading body of %s: %w", url, err)
	}
	return &HTTPResult{Status: resp.StatusCode, Body: body, TLS: resp.TLS}, nil
}

func (h *Harness) dialTestNetwork(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	h.mu.Lock()
	allowed := false
	for _, n := range h.subnets {
		allowed = allowed || (ip != nil && n.Contains(ip))
	}
	h.mu.Unlock()
	if !allowed {
		return nil, fmt.Errorf("refusing to dial %s: the e2e harness only talks to container IPs on networks this run created", addr)
	}
	return (&net.Dialer{Timeout: 3 * time.Second}).DialContext(ctx, network, addr)
}
