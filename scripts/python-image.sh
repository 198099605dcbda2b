#!/usr/bin/env bash
# python-image.sh [name]: a Debian bookworm image with python3, httpx,
# uvicorn and FastAPI, built without a registry: debootstrap a minbase root
# from the apt mirror this machine already uses, then `docker import` it.
#
# The image is cached by name: if it exists nothing is built (a build takes
# about 80 s and 300 MB). Change PACKAGES and the default tag together, so a
# cached image never stands for a different package set.
#
# Needs root and debootstrap (.ci/run installs it). Concurrent callers wait on
# one lock instead of building twice. Prints the image name on stdout.
set -euo pipefail

NAME=${1:-${CRANK_PYTHON_IMAGE:-crank-python:bookworm-1}}
PACKAGES=python3,python3-httpx,python3-uvicorn,python3-fastapi
SUITE=bookworm

have_image() { docker image inspect "$NAME" >/dev/null 2>&1; }

# The first Debian mirror apt is configured with (deb822 or one-line
# sources), so the build works wherever apt does; deb.debian.org otherwise.
mirror() {
  if [[ -n ${CRANK_DEBIAN_MIRROR:-} ]]; then
    echo "$CRANK_DEBIAN_MIRROR"
    return
  fi
  local m
  m=$(grep -hsE '^URIs:.*/debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2; exit}')
  [[ -n $m ]] || m=$(grep -hsE '^deb .*/debian/? ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk '{for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}')
  echo "${m:-http://deb.debian.org/debian}"
}

if have_image; then
  echo "$NAME"
  exit 0
fi

command -v debootstrap >/dev/null || command -v /usr/sbin/debootstrap >/dev/null || {
  echo "python-image: debootstrap is missing (apt-get install debootstrap)" >&2
  exit 1
}
[[ $(id -u) == 0 ]] || {
  echo "python-image: debootstrap needs root to build $NAME" >&2
  exit 1
}

exec 9>"${TMPDIR:-/tmp}/crank-python-image.lock"
flock 9
# Another caller may have built it while this one waited for the lock.
if have_image; then
  echo "$NAME"
  exit 0
fi

root=$(mktemp -d "${TMPDIR:-/var/tmp}/crank-python-root.XXXXXX")
trap 'rm -rf "$root"' EXIT
src=$(mirror)
echo "python-image: building $NAME from $src ($PACKAGES)" >&2
start=$SECONDS
PATH=$PATH:/usr/sbin debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$src" >"$root.log" 2>&1 || {
  tail -20 "$root.log" >&2
  rm -f "$root.log"
  exit 1
}
rm -f "$root.log"
# Package caches are not needed at run time.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" -c . | docker import \
  --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  --change 'CMD ["python3"]' \
  - "$NAME" >/dev/null
echo "python-image: built $NAME in $((SECONDS - start))s" >&2
echo "$NAME"
