// Package status is the controller's operator surface: a read-only JSON API,
// an HTML dashboard, and the TLS material to serve both over mTLS.
//
//   - Build (build.go) turns state records and a Summary into the versioned
//     JSON model (model.go: Report, ContainerStatus, ...). It is a pure
//     function, table-tested without a server.
//   - NewHandler (handler.go) serves GET /api/v1/status,
//     GET /api/v1/status/{service} and the dashboard at GET /.
//   - The dashboard (dashboard.go, .html, .css, .js) is one embedded,
//     self-contained page: no external assets, a strict Content Security
//     Policy that admits only its own inline style and script by hash. The
//     server renders the table; the script refreshes it every 5 seconds.
//   - ListenerTLS (listener.go) and WriteOperatorBundle (operator.go) put the
//     listener behind mTLS with the controller's own CA, and give the
//     operator a client identity for `controller status --tls-dir`.
//
// The model never carries key material: only serials, fingerprints, expiry
// dates and reason codes (TestModelCarriesNoKeyMaterial keeps it so).
//
// What it talks to: a Source (the controller adapts its state store and CA
// with Funcs), a certs.Authority for the listener and operator bundle, and
// the file system only in WriteOperatorBundle. It never talks to Docker.
package status
