#!/usr/bin/env bash
# kubemedic at scale: 10 simulated nodes, a Deployment of N healthy pods for each N in
# SCALE_PODS (default 1000,3000,10000), and at each step a fresh kubemedic (watchers on):
#   - time from start until its watches' first lists are in the stores ("watchers synced"),
#   - RSS once synced, and after a paged full listing of the N pods,
#   - the paged full listing (list_resources limit 500 + continue; the Go server's one call),
#   - the Go server's RSS after it listed them (started with KUBE_CLIENT_QPS=1000); both servers'
#     RSS as the median of SCALE_RSS_ROUNDS samples, each 2 s after one more full listing,
#   - a burst: a Deployment of SCALE_BURST (1000) pods with an image the simulated registry lacks
#     (ErrImagePull for each at about the same time): signals received, dropped, and the p99 of
#     kubemedic_signal_handling_seconds (a signal's arrival from the watch to its incident being
#     opened or folded), and of kubemedic_watch_delivery_seconds (the part before it: from a
#     Warning Event's write, stamped by nodesim --event-time as its create request leaves, to
#     kubemedic's watch receiving it), from /metrics before and after the burst.
#
#   bash tests/bench/scale.sh        # results in $SCALE_DIR/scale.md (default /tmp/kubemedic-scale)
#
# Env: SCALE_DIR, SCALE_PODS, SCALE_BURST, SCALE_RSS_ROUNDS (5), BENCH_PROFILE (debug|release, default release),
# BENCH_NO_BUILD=1, and the cluster ports (62xxx defaults, apart from tests/run.sh and run.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DIR=${SCALE_DIR:-/tmp/kubemedic-scale}
STEPS=${SCALE_PODS:-1000,3000,10000}
BURST=${SCALE_BURST:-1000}
RSS_ROUNDS=${SCALE_RSS_ROUNDS:-5}
PROFILE=${BENCH_PROFILE:-release}
export ETCD_PORT=${ETCD_PORT:-62379} PEER_PORT=${PEER_PORT:-62380} PORT=${PORT:-62443}
export CM_PORT=${CM_PORT:-62257} SCHED_PORT=${SCHED_PORT:-62259}
log() { echo "[scale] $(date -u +%T) $*" >&2; }

source tests/bench/lib.sh
GO_PEER="$KUBEMEDIC_NPM/node_modules/kubernetes-mcp-server-linux-amd64/bin/kubernetes-mcp-server-linux-amd64"
[ -x "$GO_PEER" ] || { echo "missing $GO_PEER (tests/tools/install.sh)" >&2; exit 1; }
bench_build mcpbench
require "$BIN/kubemedic" "$BIN/nodesim" "$MCPBENCH"
LOAD_BEFORE=$(load)

MAX=0
for n in ${STEPS//,/ }; do [ "$n" -gt "$MAX" ] && MAX=$n; done
PER_NODE=$(( (MAX + BURST) / 10 + 100 ))
log "control plane on :$PORT; nodesim: 10 nodes, $PER_NODE pods each at most"
bench_cluster 10 --max-pods "$PER_NODE" --cpu 1000 --memory 4000Gi --warnings-only --event-time

TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)
GO_PORT=$(free_port)
env KUBE_CLIENT_QPS=1000 KUBE_CLIENT_BURST=2000 "$GO_PEER" --port "$GO_PORT" --bind-address 127.0.0.1 \
  --kubeconfig "$KUBECONFIG" --read-only --disable-multi-cluster >"$DIR/kubernetes-mcp-server.log" 2>&1 &
GO_PID=$!; PIDS+=($GO_PID)
wait_port "$GO_PORT"

K create namespace bulk >&2
K create namespace burst >&2
K -n bulk create deployment bulk --image=nginx:1.25 --replicas=0 >&2
running() { K -n "$1" get pods --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l; }
# Pods whose container waits on an image pull error (what nodesim derives for an unknown image).
pull_errors() {
  K -n burst get pods -o jsonpath='{range .items[*]}{.status.containerStatuses[0].state.waiting.reason}{"\n"}{end}' \
    2>/dev/null | grep -cE 'ErrImagePull|ImagePullBackOff' || true
}
# kubemedic's /metrics on port $1 as JSON in $2 (runner.py reads these snapshots too).
metrics() { "$PY" tests/bench/runner.py snapshot --port "$1" --out "$2"; }

echo "[" >"$DIR/scale.json"
FIRST=1
for N in ${STEPS//,/ }; do
  log "step $N: scaling bulk to $N pods"
  t0=$(date +%s)
  K -n bulk scale deployment bulk --replicas="$N" >&2
  for _ in $(seq 900); do r=$(running bulk); [ "$r" -ge "$N" ] && break; sleep 2; done
  log "step $N: $r pods Running after $(( $(date +%s) - t0 )) s"

  KM_PORT=$(free_port)
  cat >"$DIR/kubemedic-$N.yaml" <<YAML
cluster: { name: scale, exclude_namespaces: [kube-system, kube-public, kube-node-lease] }
rules_dir: $ROOT/rules
prompts_dir: $ROOT/prompts
state_dir: $DIR/km-state-$N
http: { listen: "127.0.0.1:$KM_PORT" }
auth:
  tokens:
    - { name: bench, sha256: "$SHA", role: viewer }
YAML
  start=$(date +%s.%N)
  # The "watchers synced" log line (every first list in the stores) is the mark: it comes just
  # before /readyz turns ready, and polling a log costs less than polling HTTP.
  RUST_LOG=warn,kubemedic::app::run::leader_tasks=info "$BIN/kubemedic" run --config "$DIR/kubemedic-$N.yaml" \
    >"$DIR/kubemedic-$N.log" 2>&1 &
  KM_PID=$!
  for _ in $(seq 2400); do grep -q "watchers synced" "$DIR/kubemedic-$N.log" && break; sleep 0.05; done
  ready=$(echo "$(date +%s.%N) - $start" | bc)
  wait_port "$KM_PORT"
  sleep 3
  rss_synced=$(rss "$KM_PID")
  log "step $N: kubemedic watches synced ${ready}s after start, RSS ${rss_synced} MiB; listing"
  "$MCPBENCH" --server "kubemedic=http://127.0.0.1:$KM_PORT/mcp=$KM_PID=$TOKEN" \
    --server "kubernetes-mcp-server=http://127.0.0.1:$GO_PORT/mcp=$GO_PID" \
    --namespace bulk --pod none --ops list_all --concurrency 1 --calls 3 --seconds 120 --out "$DIR/list-$N.json"
  # One RSS sample says more about when a garbage collector last ran than about what a server
  # holds: after the timed listing, each of RSS_ROUNDS rounds lists every pod once more on both
  # servers and samples both 2 s later; the table takes each server's median.
  : >"$DIR/rss-$N.txt"
  for round in $(seq "$RSS_ROUNDS"); do
    "$MCPBENCH" --server "kubemedic=http://127.0.0.1:$KM_PORT/mcp=$KM_PID=$TOKEN" \
      --server "kubernetes-mcp-server=http://127.0.0.1:$GO_PORT/mcp=$GO_PID" \
      --namespace bulk --pod none --ops list_all --concurrency 1 --calls 1 --seconds 120 \
      --out "$DIR/rss-round-$N-$round.json" >/dev/null
    sleep 2
    echo "$(rss "$KM_PID") $(rss "$GO_PID")" >>"$DIR/rss-$N.txt"
  done
  log "step $N: RSS after each listing round (kubemedic, Go): $(tr '\n' ';' <"$DIR/rss-$N.txt")"

  log "step $N: burst of $BURST pods that cannot pull their image"
  metrics "$KM_PORT" "$DIR/metrics-$N-before.json"
  tb=$(date +%s)
  K -n burst create deployment burst --image=registry.invalid/missing:1 --replicas="$BURST" >&2
  for _ in $(seq 600); do e=$(pull_errors); [ "$e" -ge "$BURST" ] && break; sleep 1; done
  burst_s=$(( $(date +%s) - tb ))
  sleep 10  # the last signals through intake
  metrics "$KM_PORT" "$DIR/metrics-$N-after.json"
  log "step $N: $e pods with an image pull error after ${burst_s}s"
  [ "$FIRST" = 1 ] || echo "," >>"$DIR/scale.json"
  FIRST=0
  "$PY" - "$DIR" "$N" "$ready" "$rss_synced" "$e" "$burst_s" "$BURST" >>"$DIR/scale.json" <<'PY'
import json, statistics, sys
sys.path.insert(0, "tests/bench")
from runner import delta, quantiles, total
d, n, ready, rss_synced, failed, burst_s, BURST = sys.argv[1:]
samples = [tuple(map(float, line.split())) for line in open(f"{d}/rss-{n}.txt") if line.strip()]
km_rss, go_rss = [s[0] for s in samples], [s[1] for s in samples]
BURST = int(BURST)
change = delta(json.load(open(f"{d}/metrics-{n}-after.json")), json.load(open(f"{d}/metrics-{n}-before.json")))
handling = quantiles(change, "kubemedic_signal_handling_seconds")
delivery = quantiles(change, "kubemedic_watch_delivery_seconds")
listing = json.load(open(f"{d}/list-{n}.json"))
cell = lambda s: listing[s]["cells"]["list_all@1"]
print(json.dumps({
    "pods": int(n), "ready_s": float(ready), "rss_synced_mib": float(rss_synced),
    "rss_listed_mib": statistics.median(km_rss), "go_rss_listed_mib": statistics.median(go_rss),
    "rss_listed_samples_mib": km_rss, "go_rss_listed_samples_mib": go_rss,
    "list_all_p50_ms": {s: cell(s).get("p50_ms") for s in listing},
    "list_all_error": {s: cell(s).get("error") for s in listing if "error" in cell(s)},
    "burst": {"pods": BURST, "failed": int(failed), "seconds_to_all_failed": int(burst_s),
              "signals_handled": handling["count"], "p50_upper_s": handling["p50_upper_s"],
              "p99_upper_s": handling["p99_upper_s"], "delivered_events": delivery["count"],
              "delivery_p50_upper_s": delivery["p50_upper_s"], "delivery_p99_upper_s": delivery["p99_upper_s"],
              "dropped": total(change, "kubemedic_dropped_signals_total"),
              "signals_received": total(change, "kubemedic_signals_total")},
}))
PY
  kill "$KM_PID"; wait "$KM_PID" 2>/dev/null || true; KM_PID=""
  K -n burst delete deployment burst --wait=false >&2
  for _ in $(seq 300); do [ "$(K -n burst get pods --no-headers 2>/dev/null | wc -l)" = 0 ] && break; sleep 2; done
done
echo "]" >>"$DIR/scale.json"
LOAD_AFTER=$(load)

"$PY" - "$DIR/scale.json" "$LOAD_BEFORE" "$LOAD_AFTER" "$PROFILE" <<'PY' | tee "$DIR/scale.md"
import json, sys
rows, before, after, profile = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
print(f"kubemedic build profile: {profile}; load average before {before}, after {after}. RSS after listing: the median of {len(rows[0]['rss_listed_samples_mib'])} samples per server, each 2 s after a full listing by both.\n")
print("| pods | kubemedic start → watches synced | kubemedic RSS synced / after listing (median; range) | kubernetes-mcp-server RSS after listing (median; range) | RSS ratio (medians) | full listing, kubemedic (pages of 500) / Go (one call) | burst: signals handled, dropped | signal arrival → incident p50 / p99 (bucket upper bound) | Warning Event write → kubemedic's watch p50 / p99 (events) |")
print("|---|---|---|---|---|---|---|---|---|")
for r in rows:
    b = r["burst"]
    lst = r["list_all_p50_ms"]
    fmt = lambda v: "error" if v is None else f"{v:.0f} ms"
    q = lambda v: "n/a" if v is None else f"≤ {v * 1000:g} ms"
    span = lambda v: f"{min(v):.0f}–{max(v):.0f}"
    print(f"| {r['pods']} | {r['ready_s']:.1f} s | {r['rss_synced_mib']:.0f} / {r['rss_listed_mib']:.0f} MiB ({span(r['rss_listed_samples_mib'])}) | "
          f"{r['go_rss_listed_mib']:.0f} MiB ({span(r['go_rss_listed_samples_mib'])}) | {r['rss_listed_mib'] / r['go_rss_listed_mib']:.2f} | "
          f"{fmt(lst.get('kubemedic'))} / {fmt(lst.get('kubernetes-mcp-server'))} | "
          f"{b['signals_handled']:.0f} of {b['signals_received']:.0f}, {b['dropped']:.0f} dropped ({b['failed']} pods failing after {b['seconds_to_all_failed']} s) | "
          f"{q(b['p50_upper_s'])} / {q(b['p99_upper_s'])} | "
          f"{q(b.get('delivery_p50_upper_s'))} / {q(b.get('delivery_p99_upper_s'))} ({b.get('delivered_events', 0):.0f}) |")
PY
