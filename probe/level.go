package probe

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Level is the security a container actually serves, as measured from
// outside by a verifying client holding the controller's credentials.
type Level string

// Levels, weakest first. Each constant is typed (a bare `Plain = "plain"` in
// a const block would be an untyped string, not a Level).
const (
	// Down: nothing answered on any probed port (or nothing could be probed).
	Down Level = "down"
	// Plain: the service is up but offers no security a verifying client can
	// use: it answered plain HTTP only, or its HTTPS port answered with a
	// certificate that does not verify, refused our client certificate,
	// failed the handshake (an old TLS version, no ALPN protocol in common),
	// or did not speak TLS. The findings say which.
	Plain Level = "plain"
	// TLS: a verified server certificate, but the server also serves a
	// client that presents no certificate (client auth not enforced).
	TLS Level = "tls"
	// MTLS: a verified server certificate, and the server refuses a client
	// without a certificate, either in the handshake or with HTTP 401/403.
	MTLS Level = "mtls"
)

// ErrUnknownLevel is wrapped by ParseLevel errors.
var ErrUnknownLevel = errors.New("unknown security level")

// ParseLevel parses a level name from a label (mtls, tls, plain) or from a
// stored status (also down), ignoring case and surrounding space like
// certs.ParseKeyAlgorithm. Callers parsing a policy floor should reject Down
// themselves: "down" is something we observe, not something to ask for.
func ParseLevel(s string) (Level, error) {
	switch l := Level(strings.ToLower(strings.TrimSpace(s))); l {
	case Down, Plain, TLS, MTLS:
		return l, nil
	}
	return "", fmt.Errorf("%w %q: want mtls, tls or plain", ErrUnknownLevel, s)
}

// Rank orders levels: down 0 < plain 1 < tls 2 < mtls 3, and -1 for anything
// else. It is also the numeric value of the observed-level gauge, so the
// mapping is part of the metric's contract and must not change:
//
//	0 down, 1 plain, 2 tls, 3 mtls
func (l Level) Rank() int {
	switch l {
	case Down:
		return 0
	case Plain:
		return 1
	case TLS:
		return 2
	case MTLS:
		return 3
	}
	return -1
}

// Reason says what a probe found wrong. Reasons are stable strings: they go
// into logs, metric labels and the state store.
type Reason string

// Reasons, in the order Result.Findings lists them.
const (
	// ClientAuthNotEnforced: the HTTPS port served a client without a
	// certificate (the level is TLS, not MTLS).
	ClientAuthNotEnforced Reason = "client-auth-not-enforced"
	// UntrustedServerCert: the served certificate does not chain to our
	// trust bundle (self-signed, a foreign CA): the theater of clients that skip verification.
	UntrustedServerCert Reason = "untrusted-server-cert"
	// SANMismatch: the served certificate does not carry the service name.
	SANMismatch Reason = "san-mismatch"
	// ExpiredServedCert: the served certificate is expired or not yet valid;
	// the message says which.
	ExpiredServedCert Reason = "expired-served-cert"
	// ServedCertNotCurrent: the served leaf is not the tls.crt on disk (the
	// process has not reloaded since the last issuance).
	ServedCertNotCurrent Reason = "served-cert-not-current"
	// ClientCertRejected (extra): the server certificate verified, but the
	// server refused our client certificate with a TLS alert, typically a
	// process still trusting only an old CA after a rollover.
	ClientCertRejected Reason = "client-cert-rejected"
	// TLSVersionUnsupported (extra): the HTTPS port speaks only TLS versions
	// older than 1.2, Go's minimum and ours; the message names the version
	// when the server said which.
	TLSVersionUnsupported Reason = "tls-version-unsupported"
	// TLSHandshakeFailed: the TLS handshake failed for a reason no other
	// finding names: no application protocol (ALPN) in common, no cipher
	// suite in common, a server that hung up or timed out. The message has
	// the cause.
	TLSHandshakeFailed Reason = "tls-handshake-failed"
	// NotTLS (extra): the HTTPS port answered, but not with TLS.
	NotTLS Reason = "not-tls"
	// HTTPAlsoOpen: plain HTTP answers next to working HTTPS, a downgrade
	// path.
	HTTPAlsoOpen Reason = "http-also-open"
	// HealthNotOK: the transport worked but the health path did not answer
	// 2xx (including no HTTP answer after a verified TLS handshake).
	HealthNotOK Reason = "health-not-ok"
	// NoPorts: the target has neither an HTTPS nor an HTTP port.
	NoPorts Reason = "no-ports"
	// NoAddresses (extra): the target has no address to probe, e.g. the
	// container shares no network with the controller.
	NoAddresses Reason = "no-addresses"
	// InvalidTarget (extra): the target is malformed (an address that is a
	// hostname or unspecified, a port out of range, no service name, a bad
	// health path). Nothing was dialed.
	InvalidTarget Reason = "invalid-target"
)

// reasonOrder is the order findings are reported in.
var reasonOrder = []Reason{
	ClientAuthNotEnforced, UntrustedServerCert, SANMismatch, ExpiredServedCert,
	ServedCertNotCurrent, ClientCertRejected, TLSVersionUnsupported, TLSHandshakeFailed,
	NotTLS, HTTPAlsoOpen, HealthNotOK, NoPorts, NoAddresses, InvalidTarget,
}

// Finding is one thing a probe found wrong, with a human-readable message.
type Finding struct {
	Reason  Reason
	Message string
}

// Step is what one request of a probe observed.
type Step struct {
	// Attempted: the step ran (it is skipped when its port is 0, when it
	// would repeat another step's port, or when an earlier step decides it).
	Attempted bool
	// OK: a complete HTTP response was received (over a verified TLS
	// connection for the HTTPS steps). Any status counts; Status says which.
	OK bool
	// Status is the HTTP status code when OK.
	Status int
	// Err is the last error when not OK.
	Err string
	// Addr is the ip:port that answered, or the last one tried.
	Addr string
}

// Result is the outcome of one probe.
type Result struct {
	Level    Level
	Findings []Finding
	// ServedFingerprint is the hex SHA-256 of the served leaf certificate,
	// "" if no certificate was seen. ServedNotAfter is its expiry.
	ServedFingerprint string
	ServedNotAfter    time.Time
	// HTTPSWithClientCert: GET health path over HTTPS presenting our client
	// certificate. HTTPSWithoutClientCert: the same without a certificate
	// (only after the first one worked). HTTP: GET health path over plain
	// HTTP on the HTTP port.
	HTTPSWithClientCert, HTTPSWithoutClientCert, HTTP Step
	// At is when the probe started (Options.Clock); Duration is its wall
	// time, measured with the monotonic clock.
	At       time.Time
	Duration time.Duration
}

// Reasons returns the reasons of r.Findings in order, without duplicates.
func (r Result) Reasons() []Reason {
	var out []Reason
	seen := map[Reason]bool{}
	for _, f := range r.Findings {
		if !seen[f.Reason] {
			seen[f.Reason] = true
			out = append(out, f.Reason)
		}
	}
	return out
}
