#!/usr/bin/env bash
# Builds the two images (counter-fcgi and its nginx) with podman, from the standard Dockerfiles in
# docker/, and copies them into the Docker engine for docker compose. Offline by default: the base
# images are the local stand-ins of scripts/make-base-images.sh and this machine's Swift toolchain
# and package mirror are mounted into the build (the Dockerfiles themselves stay standard).
#   OFFLINE=0 scripts/build-images.sh    use the upstream base images instead (needs a registry)
# Tags: localhost/counter-fcgi:$TAG and localhost/counter-nginx:$TAG (TAG default: dev).
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${TAG:-dev}
args=()
if [ "${OFFLINE:-1}" = 1 ]; then
  scripts/make-base-images.sh
  args+=(--build-arg SWIFT_IMAGE=localhost/swift:6.3.1-bookworm
         --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim
         -v /opt/swift:/opt/swift:ro -v /opt/swift-packages:/opt/swift-packages:ro)
fi
echo "build-images: counter-fcgi" >&2
podman build -q --format docker "${args[@]}" -t "localhost/counter-fcgi:$tag" -f docker/Dockerfile . >/dev/null
echo "build-images: counter-nginx" >&2
podman build -q --format docker "${args[@]}" -t "localhost/counter-nginx:$tag" -f docker/nginx.Dockerfile . >/dev/null
if docker info >/dev/null 2>&1; then
  echo "build-images: copying into the Docker engine" >&2
  podman save -m "localhost/counter-fcgi:$tag" "localhost/counter-nginx:$tag" localhost/redis:7-bookworm | docker load -q >/dev/null
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "counter-(fcgi|nginx):$tag" >&2
