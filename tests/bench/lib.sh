# The set-up tests/bench/run.sh, scale.sh and runner.sh share. Sourced (from the repository's
# root, after `set -euo pipefail`) once ROOT, DIR, PROFILE (debug|release) and the cluster
# ports are set; each script keeps what it measures.

# The tools tests/tools/install.sh keeps (kubectl, venv, npm peers), Python, and the binaries'
# directory: the shared build cache of tests/run.sh and scripts/demo.sh.
eval "$(bash tests/tools/install.sh --env)"
PY="$KUBEMEDIC_VENV/bin/python"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$KUBEMEDIC_CACHE/target}
BIN=$CARGO_TARGET_DIR/debug; [ "$PROFILE" = release ] && BIN=$CARGO_TARGET_DIR/release
MCPBENCH=$CARGO_TARGET_DIR/release/mcpbench

# kubemedic and nodesim in PROFILE, and with `mcpbench` the load generator (always release: a
# debug HTTP client would measure itself); nothing with BENCH_NO_BUILD=1.
bench_build() {
  [ "${BENCH_NO_BUILD:-0}" != 1 ] || return 0
  if [ "$PROFILE" = release ]; then cargo build --release -p kubemedic -p nodesim >&2; else cargo build -p kubemedic -p nodesim >&2; fi
  [ "${1:-}" != mcpbench ] || cargo build --release -p mcpbench >&2
}

# Stop at once when a binary the script runs is missing (nothing would come up to wait for).
require() {
  local b
  for b in "$@"; do [ -x "$b" ] || { echo "missing $b (build it, or unset BENCH_NO_BUILD)" >&2; exit 1; }; done
}

# The machine may be shared: the load average before and after goes into the results.
load() { cut -d' ' -f1-3 /proc/loadavg; }
# Resident memory of process $1, MiB.
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 240); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.25; done
  echo "port $1 never opened" >&2; return 1
}

# A fresh DIR; the processes started go in PIDS (or KM_PID, the kubemedic of the moment), and
# on exit they are stopped and the control plane with them.
rm -rf "$DIR"; mkdir -p "$DIR"
PIDS=()
KM_PID=""
cleanup() {
  for p in "${PIDS[@]}" $KM_PID; do kill "$p" 2>/dev/null || true; done
  sleep 2
  for p in "${PIDS[@]}" $KM_PID; do kill -9 "$p" 2>/dev/null || true; done
  bash tests/cluster/down.sh "$DIR/cluster" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# bench_cluster NODES [nodesim options]: the control plane in $DIR/cluster (KUBECONFIG, K),
# nodesim with NODES nodes (its log in $DIR/nodesim.log), and a wait until they are Ready.
bench_cluster() {
  local nodes=$1; shift
  bash tests/cluster/up.sh "$HOME/.cache/kubemedic/k8s-v1.20.2" "$DIR/cluster" >&2
  export KUBECONFIG="$DIR/cluster/admin.kubeconfig"
  "$BIN/nodesim" --kubeconfig "$KUBECONFIG" --nodes "$nodes" "$@" >"$DIR/nodesim.log" 2>&1 &
  NODESIM_PID=$!; PIDS+=($NODESIM_PID)
  for _ in $(seq 60); do [ "$(K get nodes --no-headers 2>/dev/null | grep -c ' Ready')" = "$nodes" ] && break; sleep 1; done
}
K() { "$KUBECTL" --kubeconfig "$KUBECONFIG" "$@"; }
