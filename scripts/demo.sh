#!/usr/bin/env bash
# The main job on a machine with no cluster: sets up and starts a real local
# control plane (etcd, kube-apiserver, controller-manager, scheduler) with
# three simulated nodes (nodesim), then runs `kubemedic demo` against it,
# and stops everything afterwards.
#
#   bash scripts/demo.sh            # asks before applying each fix
#   bash scripts/demo.sh --yes      # approves everything (unattended)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
eval "$(bash tests/tools/install.sh --env)"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$KUBEMEDIC_CACHE/target}
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
trap cleanup EXIT INT TERM

echo "== building kubemedic and nodesim" >&2
cargo build --quiet -p kubemedic -p nodesim
echo "== starting the local control plane" >&2
bash tests/cluster/up.sh "$K8S_BIN" "$STATE" >&2
export KUBECONFIG=$STATE/admin.kubeconfig
"$CARGO_TARGET_DIR/debug/nodesim" --kubeconfig "$KUBECONFIG" --nodes 3 > "$STATE/nodesim.log" 2>&1 &
PIDS+=($!)
for i in $(seq 120); do
  [ "$("$KUBECTL" get nodes --no-headers 2>/dev/null | grep -c ' Ready' || true)" -ge 3 ] && break
  sleep 0.5
done
"$CARGO_TARGET_DIR/debug/kubemedic" demo "$@"
