package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// healthResponse is GET /health. Level is what the service decided at boot,
// i.e. its self-report; the controller must verify it by probing anyway.
type healthResponse struct {
	Service     string `json:"service"`
	Mode        Mode   `json:"mode"`
	Level       Level  `json:"level"`
	CertsAtBoot bool   `json:"certs_at_boot"`
	// Peer is the verified client cert's CN, "" without one.
	Peer string `json:"peer"`
}

func (a *app) handleHealth(w http.ResponseWriter, r *http.Request) {
	resp := healthResponse{Service: a.cfg.Service, Mode: a.cfg.Mode, Level: a.dec.Level, CertsAtBoot: a.boot.CertsAtBoot}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		resp.Peer = r.TLS.PeerCertificates[0].Subject.CommonName
	}
	writeJSON(w, http.StatusOK, resp)
}

// bootInfoResponse is GET /bootinfo. ServedCert is the leaf served NOW (it
// changes when a new bundle is taken, or after a SIGHUP reload), so tests
// can compare it with the files.
type bootInfoResponse struct {
	bootInfo
	ServedCert string `json:"served_cert_sha256"`
	// Calls counts the worker loop's calls to its peers (CALL_URL).
	Calls callStats `json:"calls"`
}

func (a *app) handleBootInfo(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, bootInfoResponse{bootInfo: a.boot, ServedCert: a.servedFingerprint(), Calls: a.calls.snapshot()})
}

// callResponse is GET /call: the outcome of the outgoing mTLS request.
type callResponse struct {
	URL    string `json:"url"`
	Status int    `json:"status,omitempty"`
	Body   string `json:"body,omitempty"`
	Error  string `json:"error,omitempty"`
}

const (
	callTimeout        = 5 * time.Second
	callBodyCap        = 64 << 10
	statusNoClientCert = http.StatusServiceUnavailable // our own client material is missing
	statusCallFailed   = http.StatusBadGateway         // the peer could not be reached or verified
)

// handleCall makes the request a worker makes to the platform: mTLS with
// client.crt/client.key, trusting only ca.crt, ServerName from the URL,
// always with the bundle current at that moment (see peerClient).
func (a *app) handleCall(w http.ResponseWriter, r *http.Request) {
	res, status := a.callPeer(r.Context(), r.URL.Query().Get("url"))
	writeJSON(w, status, res)
}

// callPeer makes one outgoing mTLS request and says how it went, with the
// HTTP status /call answers with.
func (a *app) callPeer(ctx context.Context, raw string) (callResponse, int) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" {
		return callResponse{URL: raw, Error: "url must be an absolute https URL"}, http.StatusBadRequest
	}
	client, err := a.peerClient(u.Hostname())
	if err != nil {
		return callResponse{URL: raw, Error: err.Error()}, statusNoClientCert
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return callResponse{URL: raw, Error: err.Error()}, http.StatusBadRequest
	}
	resp, err := client.Do(req)
	if err != nil {
		return callResponse{URL: raw, Error: err.Error()}, statusCallFailed
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, callBodyCap))
	if err != nil {
		return callResponse{URL: raw, Status: resp.StatusCode, Error: err.Error()}, statusCallFailed
	}
	return callResponse{URL: raw, Status: resp.StatusCode, Body: string(body)}, http.StatusOK
}

// peerClient is the client for one call to host, or why there is none
// (our own client material is missing). A service following its bundle
// dials each call with the Source's current material. Otherwise the files
// are read per call, as before the kit: a load-once server still presents
// a renewed client cert at once, and a plain-booted worker uses certs
// that appeared after it started. Each call is a new connection either
// way, so every call proves a handshake.
func (a *app) peerClient(host string) (*http.Client, error) {
	if a.peers != nil {
		if _, err := a.src.Current().ClientConfig(host, true); err != nil {
			return nil, fmt.Errorf("%s: %w", a.src.Dir(), err)
		}
		return a.peers, nil
	}
	tlsCfg, err := clientTLSConfig(a.cfg.CertsDir, host, true)
	if err != nil {
		return nil, err
	}
	return &http.Client{
		Timeout:       callTimeout,
		Transport:     &http.Transport{TLSClientConfig: tlsCfg, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away; nothing to do
}
