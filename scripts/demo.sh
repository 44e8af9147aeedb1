#!/usr/bin/env bash
# The main job on a machine with no cluster: sets up and starts a real local
# control plane (etcd, kube-apiserver, controller-manager, scheduler) with
# three simulated nodes (nodesim), then runs `kubemedic demo` against it,
# and stops everything afterwards.
#
#   bash scripts/demo.sh            # asks before applying each fix
#   bash scripts/demo.sh --yes      # approves everything (unattended)
#   bash scripts/demo.sh --kubeconfig PATH [--namespace NS]
#                                   # on a cluster you already have: nothing installed or started
#
# Other arguments go to `kubemedic demo` (see `kubemedic demo --help`). KUBEMEDIC_BIN, when set,
# is the kubemedic binary to run (no build; nodesim from the same directory when it is there).
# The control plane's ports can be moved with ETCD_PORT, PEER_PORT, PORT, CM_PORT, SCHED_PORT
# (tests/cluster/up.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=tests/tools/progress.sh
. tests/tools/progress.sh

existing=
prev=
for a in "$@"; do
  [ "$prev" = --kubeconfig ] && existing=$a
  case "$a" in --kubeconfig=*) existing=${a#--kubeconfig=} ;; esac
  prev=$a
done

if [ -z "$existing" ]; then
  echo "== installing what the demo needs (the first time only)" >&2
  ENV_LINES=$(bash tests/tools/install.sh --for demo --env) || { echo "tests/tools/install.sh failed" >&2; exit 1; }
  eval "$ENV_LINES"
fi
KUBEMEDIC_CACHE=${KUBEMEDIC_CACHE:-$HOME/.cache/kubemedic}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$KUBEMEDIC_CACHE/target}

build() {
  local what=$1; shift
  echo "== building $what" >&2
  if [ -t 2 ]; then
    cargo build "$@"   # cargo draws its own progress on a terminal
  else
    heartbeat "cargo build ($what)" cargo build --quiet "$@"
  fi
}

BIN=${KUBEMEDIC_BIN:-}
# With KUBEMEDIC_BIN, nodesim is the one built beside it, when there is one.
NODESIM=
[ -n "$BIN" ] && [ -x "$(dirname "$BIN")/nodesim" ] && NODESIM=$(dirname "$BIN")/nodesim
if [ -z "$existing" ]; then
  if [ -z "$BIN" ]; then
    build "kubemedic and nodesim" -p kubemedic -p nodesim
  elif [ -z "$NODESIM" ]; then
    build nodesim -p nodesim
  fi
elif [ -z "$BIN" ]; then
  build kubemedic -p kubemedic
fi
BIN=${BIN:-$CARGO_TARGET_DIR/debug/kubemedic}
NODESIM=${NODESIM:-$CARGO_TARGET_DIR/debug/nodesim}

if [ -n "$existing" ]; then
  exec "$BIN" demo "$@"
fi

STATE=$(mktemp -d "${TMPDIR:-/tmp}/kubemedic-demo.XXXXXX")
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash tests/cluster/down.sh "$STATE" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  [ $rc -eq 0 ] || echo "demo failed; logs were in $STATE" >&2
  [ $rc -ne 0 ] || rm -rf "$STATE"
  exit $rc
}
trap cleanup EXIT INT TERM HUP

echo "== starting the local control plane" >&2
heartbeat "starting the control plane" bash tests/cluster/up.sh "$K8S_BIN" "$STATE" >&2
export KUBECONFIG=$STATE/admin.kubeconfig
"$NODESIM" --kubeconfig "$KUBECONFIG" --nodes 3 > "$STATE/nodesim.log" 2>&1 &
PIDS+=($!)
echo "== waiting for 3 simulated nodes to be Ready" >&2
for i in $(seq 120); do
  [ "$("$KUBECTL" get nodes --no-headers 2>/dev/null | grep -c ' Ready' || true)" -ge 3 ] && break
  sleep 0.5
done
"$BIN" demo "$@"
