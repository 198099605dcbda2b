#!/usr/bin/env bash
# make bench-storm: the start-storm benchmark (e2e/storm_test.go) on the real
# engine, with bin/controller (make build) run on the host.
#
#   N     container counts, comma separated, one storm each (default 100,500,1000)
#   BASE  a commit to measure side by side: its controller is built from an
#         export of that commit, and each N runs with it and then with
#         bin/controller, in one run under the same load
#   STORM_IDLE  containers created one at a time against the idle controller
#         before each storm, for event → bundle off the storm (default 50;
#         0 for none)
#   STORM_PERIODIC  on (default: probe interval 30 s), off (probes only on
#         events, so CPU per container is a container's create and start
#         alone), or both (each N and controller twice: on, then off)
#   STORM_PPROF  a loopback address (127.0.0.1:6060) where each controller in
#         turn serves its runtime profiles, e.g. for
#         `go tool pprof -sample_index=inuse_space http://127.0.0.1:6060/debug/pprof/heap`
#         at a storm's peak (GODEBUG=memprofilerate=8192 for a finer heap)
#
# The table goes to bench-storm.md (STORM_OUT to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
N=${N:-100,500,1000}
ctls="$(git describe --always --dirty --abbrev=7 2>/dev/null || echo current)=$root/bin/controller"
if [[ -n "${BASE:-}" ]]; then
  base=$(git rev-parse --short "$BASE^{commit}")
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  git archive "$base" | tar -x -C "$src"
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$root/bin/controller-$base" ./cmd/controller)
  ctls="$base=$root/bin/controller-$base,$ctls"
fi
echo "bench-storm: N=$N STORM_IDLE=${STORM_IDLE:-default} STORM_PERIODIC=${STORM_PERIODIC:-on} STORM_PPROF=${STORM_PPROF:-off} controllers: $ctls"
STORM_N=$N STORM_CONTROLLER=$ctls go test -tags e2e -count=1 -run '^TestStorm$' -timeout 180m -v ./e2e/
