#!/usr/bin/env bash
# The test command: sets up everything on a fresh Debian machine, starts the
# real parts on 127.0.0.1 (etcd + kube-apiserver + controller-manager +
# scheduler, nodesim with 3 simulated nodes, nats-server with JetStream),
# runs every test, and stops what it started.
#
#   bash tests/run.sh            # everything
#   bash tests/run.sh -E 'test(mcp)'   # extra args go to cargo nextest
#   KUBEMEDIC_SCORECARD=skip bash tests/run.sh -E …   # a quick run: no scorecard, no pytest
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# Everything the tests use. Checked before the eval: a failed install must stop here, with its
# own message, not later as an unset variable.
ENV_LINES=$(bash tests/tools/install.sh --for tests --env) || { echo "tests/tools/install.sh failed" >&2; exit 1; }
eval "$ENV_LINES"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$KUBEMEDIC_CACHE/target}
export PATH="$KUBEMEDIC_VENV/bin:$KUBEMEDIC_CACHE/bin:$PATH"

STATE=$(mktemp -d "${TMPDIR:-/tmp}/kubemedic-test.XXXXXX")
export KUBEMEDIC_TEST_STATE=$STATE
PIDS=()
cleanup() {
  local rc=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  bash tests/cluster/down.sh "$STATE" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ $rc -ne 0 ]; then
    for f in "$STATE"/*.log; do [ -f "$f" ] && { echo "---- tail $f"; tail -n 30 "$f"; }; done
  fi
  rm -rf "$STATE"
  exit $rc
}
trap cleanup EXIT INT TERM

echo "== build"
cargo build --workspace --all-targets --quiet
# A static build for the image test (scripts/image.sh puts it on scratch with buildah);
# debug keeps CI time down, the release image is built the same way by scripts/image.sh.
# Its own build cache: the static flags change every dependency's hash, and a separate directory lets
# this build run without waiting on (or evicting) the main cache's lock.
STATIC_TARGET=${KUBEMEDIC_STATIC_TARGET_DIR:-$KUBEMEDIC_CACHE/target-static}
RUSTFLAGS="-C target-feature=+crt-static" CARGO_TARGET_DIR=$STATIC_TARGET \
  cargo build --locked --quiet --target x86_64-unknown-linux-gnu -p kubemedic
export KUBEMEDIC_STATIC_BIN=$STATIC_TARGET/x86_64-unknown-linux-gnu/debug/kubemedic

echo "== control plane"
bash tests/cluster/up.sh "$K8S_BIN" "$STATE"
export KUBECONFIG=$STATE/admin.kubeconfig

echo "== nats-server"
NATS_PORT=${NATS_PORT:-14222}
nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$STATE/nats" > "$STATE/nats.log" 2>&1 &
PIDS+=($!)
export KUBEMEDIC_TEST_NATS_URL=nats://127.0.0.1:$NATS_PORT

echo "== nodesim"
"$CARGO_TARGET_DIR/debug/nodesim" --kubeconfig "$KUBECONFIG" --nodes 3 > "$STATE/nodesim.log" 2>&1 &
PIDS+=($!)
for i in $(seq 120); do
  ready=$("$KUBECTL" get nodes --no-headers 2>/dev/null | grep -c ' Ready' || true)
  [ "$ready" -ge 3 ] && break
  sleep 0.5
done
"$KUBECTL" get nodes

echo "== cargo nextest"
cargo nextest run --workspace --no-fail-fast "$@"

if [ "${KUBEMEDIC_SCORECARD:-run}" = skip ]; then
  echo "== scorecard and pytest skipped (KUBEMEDIC_SCORECARD=skip)"
  exit 0
fi

echo "== diagnosis scorecard (kubemedic eval, must be 100 %)"
# After the tests, alone: scenarios change shared objects (a Node's heartbeat) that tests running
# beside them would feel. Verification's stability window is shortened to keep CI time down.
printf 'state_dir: %s/eval\napprovals:\n  verify_stable_seconds: 10\n' "$STATE" > "$STATE/eval.yaml"
"$CARGO_TARGET_DIR/debug/kubemedic" -c "$STATE/eval.yaml" eval tests/scenarios --jobs 6 --min-pass 100 \
  2> "$STATE/eval.log"

if compgen -G "tests/python/test_*.py" >/dev/null; then
  echo "== pytest"
  python -m pytest -q tests/python
fi
