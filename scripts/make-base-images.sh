#!/usr/bin/env bash
# Makes local stand-ins for the base images the Dockerfiles start FROM, in podman's store, for
# machines that cannot reach a container registry (air-gapped builds; this project's CI machines).
# Where docker.io is reachable, none of this is needed: the Dockerfiles default to upstream images.
#   localhost/debian:bookworm-slim    debootstrap --variant=minbase from Debian's mirror
#   localhost/swift:6.3.1-bookworm    that + the Swift toolchain's runtime needs (docker/offline/)
#   localhost/redis:7-bookworm        that + Debian's redis-server (docker/redis.Dockerfile)
# Needs root, podman and debootstrap (scripts/setup-containers.sh) and Debian's mirror.
set -euo pipefail
cd "$(dirname "$0")/.."
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}

if ! podman image exists localhost/debian:bookworm-slim; then
  echo "make-base-images: debootstrap bookworm from $mirror (network to Debian's mirror)" >&2
  work=$(mktemp -d /var/tmp/counter-rootfs.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase bookworm "$work" "$mirror" >"$work.log" 2>&1 \
    || { tail -20 "$work.log" >&2; exit 1; }
  rm -f "$work.log"
  cat >"$work/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
SOURCES
  rm -rf "$work"/var/lib/apt/lists/* "$work"/var/cache/apt/*.bin "$work"/var/cache/apt/archives/*.deb
  tar -C "$work" -c . | podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm-slim >/dev/null
fi

if ! podman image exists localhost/swift:6.3.1-bookworm; then
  echo "make-base-images: building localhost/swift:6.3.1-bookworm" >&2
  podman build -q -t localhost/swift:6.3.1-bookworm -f docker/offline/swift.Containerfile docker/offline >/dev/null
fi

if ! podman image exists localhost/redis:7-bookworm; then
  echo "make-base-images: building localhost/redis:7-bookworm" >&2
  podman build -q -t localhost/redis:7-bookworm --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim \
    -f docker/redis.Dockerfile . >/dev/null
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E 'localhost/(debian|swift|redis)' >&2
