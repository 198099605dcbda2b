// Package e2e proves the controller against the real Docker engine. Fakes
// of a large API lie; these tests do not.
//
// Everything lives in _test.go files behind the `e2e` build tag, so a plain
// `go test ./...` never touches Docker:
//
//	go test -tags e2e ./e2e -count=1 -v
//
// TestMain (harness_test.go) checks the engine first. Unreachable engine:
// with CI=true the run FAILS, so CI can never pass by skipping silently;
// otherwise it prints a skip message and exits 0.
//
// The harness builds static binaries on the host (CGO_ENABLED=0) and wraps
// them in FROM scratch images (deploy/Dockerfile, deploy/testservice.Dockerfile),
// so it needs no registry. The Python kit's tests run on a Debian image made
// with debootstrap and `docker import`, cached by name across runs. It talks
// to the Docker engine (SDK client with API version negotiation, and the
// docker CLI for builds) and, over HTTP, only to
// containers on bridge networks the run created, by IP. Every resource it
// creates is labelled crank.e2e=1 and crank.e2e.run=<run id>, and removed
// when its test ends; leftovers of dead runs are removed at the next start.
//
// The harness is split by concern:
//
//	harness_test.go             TestMain's engine check, the shared Harness, per-test scopes
//	harness_images_test.go      building the controller and testservice images
//	harness_engine_test.go      networks, volumes, inspect and logs
//	harness_service_test.go     RunService and its options
//	harness_controller_test.go  StartController
//	harness_http_test.go        HTTPGet, limited to the run's own networks
//	harness_volume_test.go      reading and writing files inside volumes
//	harness_wait_test.go        WaitFor, the one way a test waits
//	harness_cleanup_test.go     removing what a test or a dead run left
//	harness_python_test.go      the Python image (scripts/python-image.sh) and the kit's test app on it
package e2e
