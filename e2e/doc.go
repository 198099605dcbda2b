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
// so it needs no registry. It talks to the Docker engine (SDK client with API
// version negotiation, and the docker CLI for builds) and, over HTTP, only to
// containers on bridge networks the run created, by IP. Every resource it
// creates is labelled crank.e2e=1 and crank.e2e.run=<run id>, and removed
// when its test ends; leftovers of dead runs are removed at the next start.
package e2e
