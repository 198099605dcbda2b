// Package servicekit is the service side of the controller's bundles: what
// a Go service links in to find, wait for and use the mTLS bundle the
// controller writes for it, and to take a new one without a restart.
//
// The bundle is a directory (found by Locate: CRANK_CERTS_DIR, then
// /certs/<service>, then /etc/certs/<service>) holding tls.crt and tls.key
// (the server pair), client.crt and client.key (the client pair) and ca.crt
// (the trust bundle; during a CA rollover, the old and the new CA). The
// controller publishes each bundle the way Kubernetes' AtomicWriter does:
// the five visible names are symlinks into ..data, itself a symlink to a
// ..<timestamp> generation directory, and a new bundle is swapped in by one
// rename of ..data. A directory of plain files works too.
//
//   - Load reads one generation and checks it: each key matches its
//     certificate, each leaf has its extended key usage, is within its
//     validity and chains to ca.crt (Problem, ProblemCode).
//   - Wait waits for a complete, consistent bundle. In production it fails
//     after its timeout naming what is missing; in development it logs one
//     WARN naming it and lets the service degrade (DecideLevel).
//   - Source holds the current material and watches ..data (a readlink
//     every Config.Poll). A new generation is taken, atomically, only when
//     it is complete and consistent; otherwise the previous one stays and
//     one WARN names the generation and its problems. Servers built with
//     ServerConfig take the new certificate and client CAs on their next
//     handshake; clients built with DialTLSContext or Transport present the
//     new client certificate and trust the new ca.crt on their next
//     connection. Connections already open are left alone.
//
// It never skips verification: without ca.crt there is no client config.
//
// The package talks only to the file system (the bundle directory) and,
// through the configs it builds, to the peers the service dials or accepts.
// It has no dependency beyond the standard library.
package servicekit
