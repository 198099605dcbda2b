// Package probe measures, from outside, what security a container actually
// serves, because files on disk prove nothing about a process that loaded
// its certificates once at start (uvicorn and friends never reload).
//
// A probe (Prober.Probe) makes up to three requests to the container's own
// IP addresses, each on a fresh connection with a fresh handshake:
//
//  1. HTTPS GET of the health path presenting the controller's client
//     certificate; the served certificate must chain to our trust bundle
//     (its roots) through the intermediates the server sends after it, and
//     carry the service name;
//  2. if (1) worked, the same request without a client certificate, to see
//     whether client authentication is enforced (an HTTP 401/403 counts as
//     enforced by the application);
//  3. plain HTTP GET of the health path on the HTTP port.
//
// The HTTPS requests offer ALPN h2 and http/1.1 and speak HTTP/2 when the
// server selects it, so a gRPC-style service that speaks only HTTP/2 is
// measured like any other; otherwise they speak HTTP/1.1.
//
// The outcome is a Level (down < plain < tls < mtls) and Findings that say
// why (client-auth-not-enforced, untrusted-server-cert, san-mismatch,
// expired-served-cert, served-cert-not-current, tls-version-unsupported,
// tls-handshake-failed, http-also-open, ...).
// A served certificate that fails verification never counts as tls: the
// service is then plain at best, with the verification failure as finding.
// Gathering (prober.go) is kept apart from deciding (classify.go, pure).
//
// Safety: only literal container IPs are dialed (hostnames are refused; the
// service name is used only as SNI and for verification), every step has a
// deadline, redirects are not followed, bodies and headers are capped,
// proxies from the environment are ignored, nothing is reused between
// probes, and a semaphore bounds the probes in flight. Verification is never
// skipped; certificates that fail it are inspected through the verification
// error itself (tls.CertificateVerificationError).
//
// TargetFor derives a Target from a dockerwatch.Container (labels, then
// environment, then exposed ports). The package talks to the network only;
// it knows nothing about Docker's API or the certs volume.
package probe
