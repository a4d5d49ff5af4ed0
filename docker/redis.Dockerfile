# Redis from Debian's package, for air-gapped test runs where the upstream `redis` image cannot be
# pulled (scripts/make-base-images.sh builds it). Deployments use the upstream image.
ARG RUNTIME_IMAGE=debian:bookworm-slim
# checkov:skip=CKV_DOCKER_7: the tag is pinned in the ARG default above; checkov cannot read ARGs
FROM ${RUNTIME_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* \
 && mkdir -p /data && chown 999:999 /data \
 && ln -s /usr/bin/redis-server /usr/local/bin/redis-server \
 && ln -s /usr/bin/redis-cli /usr/local/bin/redis-cli
USER 999:999
WORKDIR /data
EXPOSE 6379
# NOAUTH counts as alive: the server answers, it only wants the password.
HEALTHCHECK --interval=5s --timeout=3s CMD ["/bin/sh", "-c", "redis-cli ping | grep -qE 'PONG|NOAUTH'"]
CMD ["redis-server", "--protected-mode", "no"]
