# nginx in front of counter-fcgi, non-root on port 8080, for a read-only root filesystem.
# Build from the repository root:  docker build -f docker/nginx.Dockerfile -t counter-nginx .
# The configuration comes from nginx/ (baked in here, the only copy the containers use: Kubernetes
# and compose pass settings only) and is rendered from the environment at start.
ARG RUNTIME_IMAGE=debian:bookworm-slim
# checkov:skip=CKV_DOCKER_7: the tag is pinned in the ARG default above; checkov cannot read ARGs
FROM ${RUNTIME_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /var/log/* /etc/nginx/sites-enabled/* \
 && rm -f /usr/share/nginx/html/index.html
COPY nginx/ /etc/counter-nginx/templates/
# The socket folder exists here too, with counter-fcgi's owner and mode: a volume shared by both
# containers takes its first owner from whichever image mounts it first (podman, docker), and it
# must always be counter-fcgi's (Kubernetes' emptyDir gets the group from fsGroup instead).
RUN install -d -o 10001 -g 10001 -m 0750 /run/counter-fcgi
COPY docker/nginx-entrypoint.sh /usr/local/bin/nginx-entrypoint.sh
# Unprivileged; group 10001 is counter-fcgi's, so the 0660 socket is reachable.
USER 10002:10001
ENV NGINX_LISTEN=8080 \
    NGINX_RUN_DIR=/tmp/nginx \
    FCGI_LISTEN=unix:/run/counter-fcgi/counter-fcgi.sock
EXPOSE 8080
STOPSIGNAL SIGQUIT
# No curl in the image: bash's /dev/tcp asks /livez (Host localhost must be in SERVER_NAMES).
HEALTHCHECK --interval=10s --timeout=3s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /livez HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/nginx-entrypoint.sh"]
