#!/usr/bin/env bash
# make demo-swarm / make demo-swarm-down: the demo as a swarm stack
# (deploy/stack.yaml) with the controller in swarm mode.
#
# up: builds the images from host-built static binaries (no registry), makes
# this engine a single-node swarm on the loopback address if it is in none
# (and marks the node, so down knows the swarm is the demo's), creates the
# CA's key-encryption key, and deploys the stack.
# down: removes the stack, the secrets and configs the controller made, the
# key-encryption key and the state volume, and leaves the swarm (removing
# docker_gwbridge) only when up created it.
set -euo pipefail
cd "$(dirname "$0")/.."
STACK=${CRANK_DEMO_STACK:-crank}
PORT=9090
MARK=crank.demo.swarm # node label: this swarm was made by make demo-swarm

build_image() { # binary dockerfile tag
  local ctx
  ctx=$(mktemp -d)
  cp "bin/$1" "$ctx/$1"
  DOCKER_BUILDKIT=0 docker build -q -f "$2" -t "$3" "$ctx" >/dev/null
  rm -rf "$ctx"
  echo "built $3"
}

swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}'; }

up() {
  build_image controller deploy/Dockerfile crank-mtls-controller:dev
  build_image testservice deploy/testservice.Dockerfile crank-testservice:dev
  if [ "$(swarm_state)" = inactive ]; then
    docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
    docker node update --label-add "$MARK=created" "$(docker info --format "{{.Swarm.NodeID}}")" >/dev/null
    echo "initialised a single-node swarm on 127.0.0.1 (make demo-swarm-down leaves it)"
  fi
  if ! docker secret inspect crank-ca-kek >/dev/null 2>&1; then
    head -c 32 /dev/urandom | docker secret create --label "$MARK=1" crank-ca-kek - >/dev/null
    echo "created the CA's key-encryption key (swarm secret crank-ca-kek)"
  fi
  # A swarm VIP needs IPVS in the kernel; without it, DNS round robin.
  if [ -e /proc/net/ip_vs ] || [ -n "${CRANK_ENDPOINT_MODE:-}" ]; then :; else export CRANK_ENDPOINT_MODE=dnsrr; fi
  docker stack deploy -c deploy/stack.yaml "$STACK"
  cat <<MSG

crank swarm demo is up (stack "$STACK").
  tasks and their nodes: bin/controller swarm --url http://127.0.0.1:$PORT
  status table:          bin/controller status --url http://127.0.0.1:$PORT
  dashboard:             http://127.0.0.1:$PORT/
  the bundles:           docker secret ls --filter label=crank.security.managed=bundle
  a CA rollover:         docker exec \$(docker ps -qf name=${STACK}_controller) /controller ca rotate
  tear down:             make demo-swarm-down
MSG
}

# wait_gone runs a listing command until it prints nothing.
wait_gone() {
  for _ in $(seq 1 120); do
    [ -z "$("$@" 2>/dev/null)" ] && return 0
    sleep 0.5
  done
  echo "still there after 60s: $*" >&2
  return 1
}

down() {
  if [ "$(swarm_state)" != active ]; then
    echo "this engine is in no swarm: nothing to take down"
    return 0
  fi
  docker stack rm "$STACK" >/dev/null 2>&1 || true
  wait_gone docker ps -aq --filter "label=com.docker.stack.namespace=$STACK"
  wait_gone docker network ls -q --filter "label=com.docker.stack.namespace=$STACK"
  docker secret ls -q --filter label=crank.security.managed | xargs -r docker secret rm >/dev/null
  docker config ls -q --filter label=crank.security.managed | xargs -r docker config rm >/dev/null
  docker secret ls -q --filter "label=$MARK" | xargs -r docker secret rm >/dev/null
  docker volume rm "${STACK}_state" >/dev/null 2>&1 || true
  if [ "$(docker node inspect self --format "{{index .Spec.Labels \"$MARK\"}}")" = created ]; then
    docker swarm leave --force >/dev/null
    wait_gone docker ps -aq --filter label=com.docker.swarm.service.id
    for _ in $(seq 1 60); do
      docker network rm docker_gwbridge >/dev/null 2>&1 || true
      docker network inspect docker_gwbridge >/dev/null 2>&1 || break
      sleep 0.5
    done
    echo "left the swarm make demo-swarm made, and removed docker_gwbridge"
  else
    echo "the swarm was not made by make demo-swarm: left it as it is"
  fi
}

case "${1:-up}" in
up) up ;;
down) down ;;
*)
  echo "usage: $0 up|down" >&2
  exit 2
  ;;
esac
