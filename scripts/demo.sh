#!/usr/bin/env bash
# make demo / make demo-down: build the images from host-built static
# binaries (no registry needed) and run deploy/compose.yaml as project
# "crank".
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT=${CRANK_DEMO_PROJECT:-crank}
PORT=${CRANK_DEMO_PORT:-9090}
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$PROJECT" -f deploy/compose.yaml "$@"
  else
    docker-compose -p "$PROJECT" -f deploy/compose.yaml "$@"
  fi
}

build_image() { # binary dockerfile tag
  local ctx
  ctx=$(mktemp -d)
  cp "bin/$1" "$ctx/$1"
  # The classic builder: buildx may be missing, and FROM scratch needs no pull.
  DOCKER_BUILDKIT=0 docker build -q -f "$2" -t "$3" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built $3"
}

case "${1:-up}" in
up)
  build_image controller deploy/Dockerfile crank-mtls-controller:dev
  build_image testservice deploy/testservice.Dockerfile crank-testservice:dev
  compose up -d --remove-orphans
  cat <<MSG

crank demo is up (project "$PROJECT").
  watch the controller:  docker logs -f $PROJECT-controller-1 2>/dev/null || docker logs -f ${PROJECT}_controller_1
  dashboard:             http://127.0.0.1:$PORT/
  status API:            http://127.0.0.1:$PORT/api/v1/status
  status table:          bin/controller status --url http://127.0.0.1:$PORT   (exit 1 if any service is below its floor)
  health and metrics:    http://127.0.0.1:$PORT/readyz   http://127.0.0.1:$PORT/metrics
  certificates:          docker run --rm -v ${PROJECT}_certs:/certs crank-testservice:dev ls /certs
  tear down:             make demo-down
MSG
  ;;
down)
  compose down -v --remove-orphans
  ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
