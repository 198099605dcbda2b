// Command testservice stands in for the user's Python services (platform,
// document converter, email classifier/parser, image classifier, streaming)
// in the e2e tests and in the demo.
//
// It reproduces the behaviours the controller has to cope with, chosen by the
// MODE environment variable:
//
//   - adaptive (default): like the seed's "anti-fragile" services, it looks at
//     its certs directory ONCE at start and picks mtls (tls.crt+tls.key+ca.crt),
//     tls (server pair only) or plain HTTP (nothing usable). The level never
//     changes afterwards, but the certificates do (see RELOAD).
//   - theater: serves TLS but accepts any client (the seed's unverified-client
//     "security theater"); with no certs it serves an in-memory self-signed
//     cert, which is the untrusted-server-cert case.
//   - plain-only: HTTP only, certs ignored.
//   - crash-on-start: logs and exits 1, for restart-loop tests.
//
// All certificate work is the servicekit package's, the same code a Go
// service links in. RELOAD picks how the certificates are used:
//
//   - watch (default): the service follows its bundle. When the controller
//     swaps in a new one (..data moves), new handshakes get the new server
//     certificate and client CAs, and new outgoing calls the new client
//     certificate and trust, within about a second and with no restart;
//     open connections finish on the old ones. A new bundle that is
//     incomplete or inconsistent is not taken (one WARN).
//   - off: the old behaviour, what uvicorn does: the server reads its
//     certificates once at start, so a new bundle is served only after a
//     restart (or a SIGHUP, with RELOAD_SIGNAL=SIGHUP). The controller's
//     tests of the restart-based path need RELOAD=off: a watching service
//     would serve the new bundle before the restart they measure. Outgoing
//     calls still read the files per call, as they always did.
//
// Environment: SERVICE_NAME (required), CERTS_DIR (the service's own bundle
// dir; default where servicekit.Locate points: CRANK_CERTS_DIR, then
// /certs/$SERVICE_NAME, then /etc/certs/$SERVICE_NAME, since the seed mixes
// both), SERVICE_HTTPS_PORT (default 8443), SERVICE_PORT (default 8080),
// MODE, RELOAD ("watch" or "off", default watch), RELOAD_SIGNAL ("" or
// SIGHUP: re-read the bundle now, in either RELOAD mode), CERTS_WAIT (default
// 0: don't wait; e.g. 30s: wait that long at start for a complete,
// consistent bundle before choosing the level, and then, with
// CRANK_ENVIRONMENT=production, exit 1 naming what is missing, or, in
// development, the default, log one WARN and start degraded), ALSO_HTTP
// (serve the plain port next to TLS, for the http-also-open finding),
// ALLOW_HTTP_HEALTHCHECK (let the healthcheck subcommand downgrade to HTTP)
// and DRAIN_ON_SIGTERM (e.g. 25s: on SIGTERM close the listeners at once but
// exit only that much later, like a server draining in-flight requests).
//
// Endpoints: GET /health, GET /bootinfo, GET /call?url=<https url> (an mTLS
// request to another service with client.crt/client.key, as workers call the
// platform) and GET /ws (a standard-library WebSocket echo, for the streaming
// service). /bootinfo reports what the service saw at start, the leaf it
// serves now and its reload mode. It logs JSON (slog) to stdout, one line
// stating the level chosen and why, and one per bundle taken.
//
// Subcommands exist because the image is FROM scratch and has no shell:
//
//	testservice healthcheck          compose HEALTHCHECK: HTTPS with the client cert
//	testservice cat <path>           print a file (e2e reads volumes with it)
//	testservice write <path> <mode> <base64>   write a file (e2e seeds volumes)
//	testservice mkfifo <path>        replace a file with a named pipe (e2e plays a hostile tenant)
//	testservice link <target> <path> replace a file with a hard link to target (likewise)
//
// It talks only to its certs directory and to the addresses it is given:
// its own listeners, and the URLs passed to /call and CALL_URL.
package main
