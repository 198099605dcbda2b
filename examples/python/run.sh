#!/usr/bin/env bash
# make example / make example-down: build the example's images (the
# controller from bin/, the Python base image, the services with the kit)
# and run examples/python/compose.yaml as project "crank-example".
#   run.sh up | down | <any compose command>, e.g. run.sh logs -f worker
set -euo pipefail
cd "$(dirname "$0")/../.."
PROJECT=${CRANK_EXAMPLE_PROJECT:-crank-example}
PORT=${CRANK_EXAMPLE_PORT:-9091}
compose() {
  if docker compose version >/dev/null 2>&1; then
    docker compose -p "$PROJECT" -f examples/python/compose.yaml "$@"
  else
    docker-compose -p "$PROJECT" -f examples/python/compose.yaml "$@"
  fi
}

build() {
  [[ -x bin/controller ]] || { echo "run: bin/controller is missing; run make build first" >&2; exit 1; }
  local ctx
  ctx=$(mktemp -d)
  cp bin/controller "$ctx/"
  # The classic builder: buildx may be missing, and no image is pulled.
  DOCKER_BUILDKIT=0 docker build -q -f deploy/Dockerfile -t crank-mtls-controller:dev "$ctx" >/dev/null
  echo "built crank-mtls-controller:dev"
  local base
  base=$(scripts/python-image.sh)
  rm -rf "${ctx:?}"/*
  cp -r servicekit/python/crank_security "$ctx/"
  find "$ctx" -name __pycache__ -prune -exec rm -rf {} +
  cp examples/python/Dockerfile examples/python/*_service.py "$ctx/"
  DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE=$base" -t crank-example-python:dev "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built crank-example-python:dev on $base"
}

case "${1:-up}" in
up)
  build
  compose up -d --remove-orphans
  cat <<MSG

crank example is up (project "$PROJECT").
  what each service serves:  examples/python/run.sh logs platform worker legacy
  the controller's view:     bin/controller status --url http://127.0.0.1:$PORT
  a CA rollover, no restart: examples/python/run.sh exec controller /controller ca rotate
                             docker events --filter label=com.docker.compose.project=$PROJECT
  tear down:                 make example-down
MSG
  ;;
down)
  compose down -v --remove-orphans
  ;;
*)
  compose "$@"
  ;;
esac
