// Package status is the controller's operator surface: a read-only JSON API,
// an HTML dashboard, and the TLS material to serve both over mTLS.
//
//   - Build (build.go) turns state records and a Summary into the versioned
//     JSON model (model.go: Report, ContainerStatus, ...). It is a pure
//     function, table-tested without a server, as are its parts:
//     JudgeProduction (readiness.go) judges each container against the
//     floor production would give it, with typed codes; levelTimeline
//     (timeline.go) turns transitions into spans of levels over a window;
//     services (services.go) rolls containers up per service; ParseQuery
//     (query.go) bounds ?recent= and ?since=.
//   - NewHandler (handler.go) serves GET /api/v1/status,
//     GET /api/v1/status/{service} and the dashboard at GET /.
//   - The dashboard (dashboard.go, dashboard_view.go, .html, .css, .js) is
//     one embedded, self-contained page: no external assets, a strict
//     Content Security Policy that admits only its own inline style and
//     script by hash. Services are collapsible groups, problems first, each
//     with the last hour as an SVG timeline; then the production verdict
//     and the certificate expiry view. The server renders it; the script
//     re-renders it from the API every 5 seconds, and filters, sorts and
//     opens groups without fetching. Both renderings are tested in a
//     headless Chromium (dashboard_browser_test.go).
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
