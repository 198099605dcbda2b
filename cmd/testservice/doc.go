// Command testservice stands in for the user's Python services (platform,
// document converter, email classifier/parser, image classifier, streaming)
// in the e2e tests and in the demo.
//
// It reproduces the behaviours the controller has to cope with, chosen by the
// MODE environment variable:
//
//   - adaptive (default): like the seed's "anti-fragile" services, it looks at
//     its certs directory ONCE at start and picks mtls (tls.crt+tls.key+ca.crt),
//     tls (server pair only) or plain HTTP (nothing usable). Like uvicorn it
//     never reloads, unless RELOAD_SIGNAL=SIGHUP declares a reload signal.
//   - theater: serves TLS but accepts any client (the seed's unverified-client
//     "security theater"); with no certs it serves an in-memory self-signed
//     cert, which is the untrusted-server-cert case.
//   - plain-only: HTTP only, certs ignored.
//   - crash-on-start: logs and exits 1, for restart-loop tests.
//
// Environment: SERVICE_NAME (required), CERTS_DIR (default /certs/$SERVICE_NAME;
// the seed mixes /certs and /etc/certs), SERVICE_HTTPS_PORT (default 8443),
// SERVICE_PORT (default 8080), MODE, RELOAD_SIGNAL ("" or SIGHUP), ALSO_HTTP
// (serve the plain port next to TLS, for the http-also-open finding) and
// ALLOW_HTTP_HEALTHCHECK (let the healthcheck subcommand downgrade to HTTP)
// and DRAIN_ON_SIGTERM (e.g. 25s: on SIGTERM close the listeners at once but
// exit only that much later, like a server draining in-flight requests).
//
// Endpoints: GET /health, GET /bootinfo, GET /call?url=<https url> (an mTLS
// request to another service with client.crt/client.key, as workers call the
// platform) and GET /ws (a standard-library WebSocket echo, for the streaming
// service). It logs JSON (slog) to stdout, one line stating the level chosen
// and why.
//
// Subcommands exist because the image is FROM scratch and has no shell:
//
//	testservice healthcheck          compose HEALTHCHECK: HTTPS with the client cert
//	testservice cat <path>           print a file (e2e reads volumes with it)
//	testservice write <path> <mode> <base64>   write a file (e2e seeds volumes)
//	testservice mkfifo <path>        replace a file with a named pipe (e2e plays a hostile tenant)
//	testservice link <target> <path> replace a file with a hard link to target (likewise)
//
// It talks only to the addresses it is given: its own listeners, and the URL
// passed to /call.
package main
