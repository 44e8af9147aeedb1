#!/usr/bin/env bash
# Side-by-side MCP benchmark: kubemedic vs kubernetes-mcp-server (Go, npm) vs
# mcp-server-kubernetes (Node, npm), on ONE control plane + nodesim, in one run.
#
#   bash tests/bench/run.sh            # results in $BENCH_DIR/results.md (default /tmp/kubemedic-bench)
#
# The Go server runs with its client-side throttle raised (KUBE_CLIENT_QPS=1000 KUBE_CLIENT_BURST=2000):
# client-go's default (5/s, burst 10) would measure the throttle, not the server. BENCH_GO_THROTTLED=1
# runs it with the default instead (the old, unfair comparison).
# Load comes from tests/bench (mcpbench, Rust, one thread, one MCP session per concurrent client),
# which also reports CPU per call of each server and of itself.
#
# Env: BENCH_DIR, BENCH_CALLS (per cell, default 2000), BENCH_SECONDS (per cell cap, default 60),
# BENCH_CONCURRENCY (default 1,16,64), BENCH_NODE_PEER=1 (also mcp-server-kubernetes, the Node server
# that runs kubectl per call: slow, off by default),
# BENCH_PODS (bulk pods for the RSS-under-load figure, default 3000), BENCH_INCIDENTS (alert-to-proposal
# samples, default 20, at most 30: the alert rule's rate limit), BENCH_PROFILE (debug|release,
# default debug), BENCH_BASELINE_BIN (another kubemedic binary measured alongside as `kubemedic-baseline`,
# e.g. a build of the previous commit; BENCH_BASELINE_ENV: env assignments for it), BENCH_NO_BUILD=1 (use the binaries already in target/), and the cluster ports ETCD_PORT PEER_PORT PORT CM_PORT SCHED_PORT (61xxx defaults).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DIR=${BENCH_DIR:-/tmp/kubemedic-bench}
CALLS=${BENCH_CALLS:-2000}
SECONDS_CAP=${BENCH_SECONDS:-60}
CONCURRENCY=${BENCH_CONCURRENCY:-1,16,64}
NODE_ON=${BENCH_NODE_PEER:-0}
PODS=${BENCH_PODS:-3000}
PROFILE=${BENCH_PROFILE:-debug}
INCIDENTS=${BENCH_INCIDENTS:-20}
[ "$INCIDENTS" -ge 1 ] && [ "$INCIDENTS" -le 30 ] || { echo "BENCH_INCIDENTS must be 1-30 (the alert rule allows 30 incidents an hour)" >&2; exit 64; }
export ETCD_PORT=${ETCD_PORT:-61379} PEER_PORT=${PEER_PORT:-61380} PORT=${PORT:-61443}
export CM_PORT=${CM_PORT:-61257} SCHED_PORT=${SCHED_PORT:-61259}
log() { echo "[bench] $(date -u +%T) $*" >&2; }

source tests/bench/lib.sh
NODE="$KUBEMEDIC_NODE22"
NM="$KUBEMEDIC_NPM/node_modules"
GO_PEER="$NM/kubernetes-mcp-server-linux-amd64/bin/kubernetes-mcp-server-linux-amd64"
NODE_PEER="$NM/mcp-server-kubernetes/dist/index.js"
[ -x "$GO_PEER" ] || { echo "missing $GO_PEER (tests/tools/install.sh)" >&2; exit 1; }
[ "$NODE_ON" != 1 ] || [ -f "$NODE_PEER" ] || { echo "missing $NODE_PEER (tests/tools/install.sh)" >&2; exit 1; }
bench_build mcpbench
require "$BIN/kubemedic" "$BIN/nodesim" "$MCPBENCH"
echo "{\"before\": \"$(load)\", \"cpus\": $(nproc)}" >"$DIR/load-before.json"

log "control plane on :$PORT"
bench_cluster 3 --max-pods 1100 --warnings-only

log "workload: namespace bench, deployment web (3 pods)"
K create namespace bench >&2
K -n bench create deployment web --image=nginx:1.25 --replicas=3 >&2
K -n bench rollout status deploy/web --timeout=120s >&2
POD=$(K -n bench get pods -l app=web -o jsonpath='{.items[0].metadata.name}')

TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
KM_PORT=$(free_port); GO_PORT=$(free_port); NODE_PORT=$(free_port)
# Namespace alertbench belongs to the alert-to-proposal part (a second kubemedic, below): this one ignores it.
cat >"$DIR/kubemedic.yaml" <<YAML
cluster: { name: bench, exclude_namespaces: [kube-system, kube-public, kube-node-lease, alertbench] }
rules_dir: $ROOT/rules
prompts_dir: $ROOT/prompts
state_dir: $DIR/km-state
http: { listen: "127.0.0.1:$KM_PORT" }
auth:
  tokens:
    - { name: bench, sha256: "$SHA", role: viewer }
YAML
log "servers: kubemedic :$KM_PORT, kubernetes-mcp-server :$GO_PORT$([ "$NODE_ON" != 1 ] || echo ", mcp-server-kubernetes :$NODE_PORT")"
RUST_LOG=warn "$BIN/kubemedic" run --config "$DIR/kubemedic.yaml" >"$DIR/kubemedic.log" 2>&1 &
KM_PID=$!; PIDS+=($KM_PID)
GO_THROTTLE=(KUBE_CLIENT_QPS=1000 KUBE_CLIENT_BURST=2000)
[ "${BENCH_GO_THROTTLED:-0}" != 1 ] || GO_THROTTLE=()
echo "{\"go_env\": \"${GO_THROTTLE[*]:-client-go default throttle (5/s, burst 10)}\"}" >"$DIR/go-env.json"
env "${GO_THROTTLE[@]}" "$GO_PEER" --port "$GO_PORT" --bind-address 127.0.0.1 --kubeconfig "$KUBECONFIG" --read-only \
  --disable-multi-cluster >"$DIR/kubernetes-mcp-server.log" 2>&1 &
GO_PID=$!; PIDS+=($GO_PID)
NODE_PID=""
if [ "$NODE_ON" = 1 ]; then
  # mcp-server-kubernetes shells out to kubectl for every call: put ours on PATH.
  PATH="$(dirname "$KUBECTL"):$PATH" ENABLE_UNSAFE_STREAMABLE_HTTP_TRANSPORT=1 HOST=127.0.0.1 PORT="$NODE_PORT" \
    ALLOW_ONLY_READONLY_TOOLS=true "$NODE" "$NODE_PEER" >"$DIR/mcp-server-kubernetes.log" 2>&1 &
  NODE_PID=$!; PIDS+=($NODE_PID)
fi
BASE_PID=""
if [ -n "${BENCH_BASELINE_BIN:-}" ]; then
  BASE_PORT=$(free_port)
  sed -e "s/:$KM_PORT\"/:$BASE_PORT\"/" -e "s#km-state#km-baseline-state#" "$DIR/kubemedic.yaml" >"$DIR/kubemedic-baseline.yaml"
  env RUST_LOG=warn ${BENCH_BASELINE_ENV:-} "$BENCH_BASELINE_BIN" run --config "$DIR/kubemedic-baseline.yaml" \
    >"$DIR/kubemedic-baseline.log" 2>&1 &
  BASE_PID=$!; PIDS+=($BASE_PID)
  log "baseline kubemedic ($BENCH_BASELINE_BIN ${BENCH_BASELINE_ENV:-}) :$BASE_PORT"
fi
wait_port "$KM_PORT"; wait_port "$GO_PORT"; [ -z "$NODE_PID" ] || wait_port "$NODE_PORT"
[ -z "$BASE_PID" ] || wait_port "$BASE_PORT"
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$KM_PORT/readyz" >/dev/null && break; sleep 1; done
sleep 5  # settle: initial watches and caches

SERVERS=(--server "kubemedic=http://127.0.0.1:$KM_PORT/mcp=$KM_PID=$TOKEN"
         --server "kubernetes-mcp-server=http://127.0.0.1:$GO_PORT/mcp=$GO_PID")
[ -z "$NODE_PID" ] || SERVERS+=(--server "mcp-server-kubernetes=http://127.0.0.1:$NODE_PORT/mcp=$NODE_PID")
[ -z "$BASE_PID" ] || SERVERS+=(--server "kubemedic-baseline=http://127.0.0.1:$BASE_PORT/mcp=$BASE_PID=$TOKEN")
rss() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
rss_all() {  # JSON members: every server's RSS
  printf '"kubemedic": %s, "kubernetes-mcp-server": %s' "$(rss $KM_PID)" "$(rss $GO_PID)"
  [ -z "$NODE_PID" ] || printf ', "mcp-server-kubernetes": %s' "$(rss $NODE_PID)"
  [ -z "$BASE_PID" ] || printf ', "kubemedic-baseline": %s' "$(rss $BASE_PID)"
}
echo "{$(rss_all)}" >"$DIR/rss-idle.json"

# What each call costs the rest of the machine too (CPU per call of the control plane and nodesim).
ALSO=(--also "kube-apiserver=$(cat "$DIR/cluster/apiserver.pid")" --also "etcd=$(cat "$DIR/cluster/etcd.pid")"
      --also "nodesim=$NODESIM_PID")
log "tool calls: $CALLS calls or ${SECONDS_CAP}s per cell, concurrency $CONCURRENCY"
"$MCPBENCH" "${SERVERS[@]}" --namespace bench --pod "$POD" --calls "$CALLS" --concurrency "$CONCURRENCY" \
  --seconds "$SECONDS_CAP" "${ALSO[@]}" --out "$DIR/calls.json"

log "alert to proposal: $INCIDENTS unschedulable Deployments in namespace alertbench"
K create namespace alertbench >&2
WORKLOADS=""
for i in $(seq "$INCIDENTS"); do
  # The scenario's first document is the Deployment (the second, `Expect`, is the scorecard's).
  awk '/^---/{exit} {print}' tests/scenarios/unschedulable-requests.yaml | sed "s/batch/batch-$i/g" \
    | K -n alertbench apply -f - >/dev/null
  WORKLOADS="$WORKLOADS${WORKLOADS:+,}batch-$i"
done
for _ in $(seq 120); do
  unsched=$(K -n alertbench get pods -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="PodScheduled")].reason}{"\n"}{end}' | grep -c Unschedulable || true)
  [ "$unsched" -ge "$INCIDENTS" ] && break; sleep 1
done
log "alert to proposal: $unsched pods Unschedulable"
# A kubemedic of its own for this part, without watchers (they would see the Pending pods and propose
# before any alert arrives): the webhook is the only trigger, the built-in runner diagnoses.
AL_PORT=$(free_port)
AL_TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
AL_SHA=$(printf %s "$AL_TOKEN" | sha256sum | cut -d' ' -f1)
cat >"$DIR/kubemedic-alerts.yaml" <<YAML
cluster: { name: bench-alerts, namespaces: [alertbench] }
rules_dir: $ROOT/rules
prompts_dir: $ROOT/prompts
state_dir: $DIR/km-alerts-state
http: { listen: "127.0.0.1:$AL_PORT" }
watch: { enabled: false }
alerts: { bearer_token_sha256: "$AL_SHA" }
agent: { runner: builtin }
auth:
  tokens:
    - { name: bench, sha256: "$SHA", role: viewer }
YAML
RUST_LOG=warn "$BIN/kubemedic" run --config "$DIR/kubemedic-alerts.yaml" >"$DIR/kubemedic-alerts.log" 2>&1 &
AL_PID=$!; PIDS+=($AL_PID)
wait_port "$AL_PORT"
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$AL_PORT/readyz" >/dev/null && break; sleep 1; done
"$PY" tests/bench/alerts.py --alerts-url "http://127.0.0.1:$AL_PORT/alerts/alertmanager" --alerts-token "$AL_TOKEN" \
  --mcp "http://127.0.0.1:$AL_PORT/mcp=$TOKEN" --namespace alertbench --workloads "$WORKLOADS" --out "$DIR/alerts.json"
kill "$AL_PID" 2>/dev/null || true

log "bulk: $PODS pods in namespace bulk"
K create namespace bulk >&2
K -n bulk create deployment bulk --image=nginx:1.25 --replicas="$PODS" >&2
for _ in $(seq 300); do
  running=$(K -n bulk get pods --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)
  [ "$running" -ge "$PODS" ] && break; sleep 2
done
log "bulk: $running pods Running"
# Three lists of the bulk namespace through each server (kubemedic returns a page: 100 items by default,
# at most 500, with a continue token), then RSS.
"$MCPBENCH" "${SERVERS[@]}" --namespace bulk --pod "$POD" --ops list,list_all --concurrency 1 \
  --calls 3 --seconds 60 --out "$DIR/calls-bulk.json"
sleep 5
echo "{$(rss_all), \"pods\": $running}" >"$DIR/rss-bulk.json"

echo "{\"after\": \"$(load)\"}" >"$DIR/load-after.json"
"$PY" tests/bench/report.py "$DIR" "$PROFILE" | tee "$DIR/results.md"
