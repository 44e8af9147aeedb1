#!/usr/bin/env bash
# Incidents per second through the built-in runner: RUNNER_WORKLOADS (500) Deployments, one pod
# each, spread over 5 namespaces, healthy on 10 simulated nodes; then `kubectl apply` (one per
# namespace, at once) breaks them all: half roll out an image tag the simulated registry lacks (ErrImagePull), half a
# secretKeyRef to a key their Secret does not have (CreateContainerConfigError). Each is its own
# incident, diagnosed by the built-in runner (reads, the proposal's server-side dry-run, storing
# it). For each worker count in RUNNER_WORKERS (default "2,8"; `agent.workers`), a fresh
# kubemedic (empty state) watches the same break:
#   - time from the apply's start until every incident is opened, and until every diagnosis ended,
#   - incidents/s and diagnoses/s over that time, per-diagnosis p50/p99
#     (kubemedic_diagnosis_duration_seconds), queue wait p50/p99 (kubemedic_incident_wait_seconds),
#     the deepest queue (kubemedic_queue_depth), the largest RSS, signals dropped,
#   - afterwards, through MCP list_incidents: how many incidents, in which status, with proposals,
#     and whether any workload got more than one.
# Between runs the workloads are put back (the same apply with the healthy template).
#
# The default rules limit new incidents to 10-30 an hour per rule; this bench copies rules/ with
# every rate_limit raised to 5000 an hour (nothing else changed), or all but 30 of the 500 would be
# refused by design.
#
#   bash tests/bench/runner.sh     # results in $RUNNER_DIR/runner.md (default /tmp/kubemedic-runner)
#
# Env: RUNNER_DIR, RUNNER_WORKLOADS, RUNNER_WORKERS, RUNNER_KUBEMEDIC (binary), BENCH_PROFILE (debug|release, default release),
# BENCH_NO_BUILD=1, and the cluster ports (the 62xxx defaults of scale.sh: run one of the two at a time).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
DIR=${RUNNER_DIR:-/tmp/kubemedic-runner}
N=${RUNNER_WORKLOADS:-500}
WORKERS=${RUNNER_WORKERS:-2,8}
PROFILE=${BENCH_PROFILE:-release}
NAMESPACES=5
export ETCD_PORT=${ETCD_PORT:-62379} PEER_PORT=${PEER_PORT:-62380} PORT=${PORT:-62443}
export CM_PORT=${CM_PORT:-62257} SCHED_PORT=${SCHED_PORT:-62259}
log() { echo "[runner] $(date -u +%T) $*" >&2; }
[ $((N % NAMESPACES)) = 0 ] || { echo "RUNNER_WORKLOADS must be a multiple of $NAMESPACES" >&2; exit 64; }

source tests/bench/lib.sh
# Another kubemedic binary to measure (e.g. a build of an earlier commit, for before/after).
KM_BIN=${RUNNER_KUBEMEDIC:-$BIN/kubemedic}
bench_build
require "$KM_BIN" "$BIN/nodesim"
LOAD_BEFORE=$(load)

# The rules kubemedic ships, with every rate limit raised for the burst (and checked: a rule
# file that changed its rate_limit syntax must fail here, not measure a refused burst).
mkdir -p "$DIR/rules"
cp rules/*.yaml "$DIR/rules/"
sed -i -E 's/rate_limit: \{max: [0-9]+, per: ([0-9a-z]+)\}/rate_limit: {max: 5000, per: \1}/' "$DIR/rules"/*.yaml
if grep -h 'rate_limit' "$DIR/rules"/*.yaml | grep -v 'max: 5000' >&2; then
  echo "runner.sh: a rate_limit above was not raised" >&2; exit 1
fi

log "control plane on :$PORT; nodesim: 10 nodes"
# --event-time: nodesim stamps its events as they are written (kubemedic_watch_delivery_seconds).
bench_cluster 10 --max-pods $(( 2 * N / 10 + 50 )) --cpu 1000 --memory 4000Gi --warnings-only --event-time

NS_LIST=$(seq -s, -f 'runner-%g' 0 $((NAMESPACES - 1)))
# healthy | broken, namespace s: its Deployments and Secret (key `token`), in one file.
manifests() {
  "$PY" - "$1" "$2" "$N" "$NAMESPACES" <<'PY'
import json, sys
state, s, n, spaces = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
docs = [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": f"runner-{s}"},
         "stringData": {"token": "bench-not-a-secret"}}]
for i in range(s, n, spaces):
    image_half = i % 2 == 0
    image = "nginx:1.99" if state == "broken" and image_half else "nginx:1.25"
    key = "tokn" if state == "broken" and not image_half else "token"
    docs.append({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": f"w{i:04d}", "namespace": f"runner-{i % spaces}", "labels": {"app": f"w{i:04d}"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": f"w{i:04d}"}},
            "template": {
                "metadata": {"labels": {"app": f"w{i:04d}"}},
                "spec": {"containers": [{
                    "name": "app", "image": image,
                    "env": [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": key}}}],
                }]},
            },
        },
    })
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
PY
}
for s in $(seq 0 $((NAMESPACES - 1))); do
  K create namespace "runner-$s" >/dev/null
  manifests healthy "$s" >"$DIR/healthy-$s.json"
  manifests broken "$s" >"$DIR/broken-$s.json"
done
# One kubectl per namespace, all at once: the writes of a break land within seconds, not
# the half minute one client takes for 500 objects.
apply() {
  local pids=() s
  for s in $(seq 0 $((NAMESPACES - 1))); do
    K apply --server-side --force-conflicts --field-manager=bench -f "$DIR/$1-$s.json" >/dev/null & pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
available() {
  K get deploy -A --no-headers -o custom-columns=NS:.metadata.namespace,A:.status.availableReplicas,U:.status.updatedReplicas 2>/dev/null \
    | awk '$1 ~ /^runner-/ && $2 == 1 && $3 == 1' | wc -l
}
healthy() {
  local t0; t0=$(date +%s)
  apply healthy
  for _ in $(seq 600); do a=$(available); [ "$a" -ge "$N" ] && break; sleep 2; done
  # The broken rollouts' pods are gone once every Deployment is back on the healthy template.
  for _ in $(seq 300); do [ "$(K get pods -A --no-headers 2>/dev/null | grep -c '^runner-')" -le "$N" ] && break; sleep 2; done
  log "$a of $N Deployments available on the healthy template after $(( $(date +%s) - t0 )) s"
}

TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
SHA=$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)

echo "[" >"$DIR/runner.json"
FIRST=1
for W in ${WORKERS//,/ }; do
  healthy
  KM_PORT=$(free_port)
  cat >"$DIR/kubemedic-$W.yaml" <<YAML
cluster: { name: runner, exclude_namespaces: [kube-system, kube-public, kube-node-lease] }
rules_dir: $DIR/rules
prompts_dir: $ROOT/prompts
state_dir: $DIR/km-state-$W
http: { listen: "127.0.0.1:$KM_PORT" }
agent: { workers: $W }
# The check lists each namespace's 100 incidents in one MCP call; the default budget (25 kB) cuts it.
mcp: { max_result_bytes: 1000000 }
auth:
  tokens:
    - { name: bench, sha256: "$SHA", role: viewer }
YAML
  RUST_LOG=warn,kubemedic::app::run::leader_tasks=info "$KM_BIN" run --config "$DIR/kubemedic-$W.yaml" \
    >"$DIR/kubemedic-$W.log" 2>&1 &
  KM_PID=$!
  for _ in $(seq 2400); do grep -q "watchers synced" "$DIR/kubemedic-$W.log" && break; sleep 0.05; done
  wait_port "$KM_PORT"
  sleep 3
  rss_idle=$(rss "$KM_PID")
  "$PY" tests/bench/runner.py snapshot --port "$KM_PORT" --out "$DIR/before-$W.json"
  log "workers=$W: kubemedic synced (RSS $rss_idle MiB); breaking $N Deployments"
  start=$(date +%s.%N)
  apply broken
  applied=$(echo "$(date +%s.%N) - $start" | bc)
  log "workers=$W: apply took ${applied}s; following the incidents"
  "$PY" tests/bench/runner.py watch --port "$KM_PORT" --pid "$KM_PID" --before "$DIR/before-$W.json" \
    --start "$start" --expect "$N" --out "$DIR/watch-$W.json"
  "$PY" tests/bench/runner.py check --mcp "http://127.0.0.1:$KM_PORT/mcp=$TOKEN" --namespaces "$NS_LIST" --expect "$N" \
    --out "$DIR/check-$W.json"
  [ "$FIRST" = 1 ] || echo "," >>"$DIR/runner.json"
  FIRST=0
  "$PY" - "$DIR" "$W" "$applied" "$rss_idle" >>"$DIR/runner.json" <<'PY'
import json, sys
d, w, applied, rss_idle = sys.argv[1:]
print(json.dumps({"workers": int(w), "apply_s": float(applied), "rss_idle_mib": float(rss_idle),
                  "watch": {k: v for k, v in json.load(open(f"{d}/watch-{w}.json")).items() if k != "timeline"},
                  "check": json.load(open(f"{d}/check-{w}.json"))}))
PY
  kill "$KM_PID"; wait "$KM_PID" 2>/dev/null || true; KM_PID=""
done
echo "]" >>"$DIR/runner.json"
LOAD_AFTER=$(load)

"$PY" - "$DIR/runner.json" "$LOAD_BEFORE" "$LOAD_AFTER" "$PROFILE" "$N" <<'PY' | tee "$DIR/runner.md"
import json, sys
rows, before, after, profile, n = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
print(f"kubemedic build profile: {profile}; load average before {before}, after {after}; {n} Deployments broken by 5 concurrent applies (one per namespace).\n")
print("| agent.workers | apply (s) | all opened (s) | all diagnosed (s) | incidents/s, diagnoses/s | diagnosis p50 / p99 | queue wait p50 / p99 | deepest queue | RSS idle / max (MiB) | outcomes | incidents listed: diagnosed, with proposals, workloads with >1 | dropped |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
ms = lambda v: "n/a" if v is None else f"≤ {v * 1000:g} ms"
s = lambda v: "n/a" if v is None else f"≤ {v:g} s"
for r in rows:
    w, c = r["watch"], r["check"]
    opened, diag = w["seconds_to_all_opened"], w["seconds_to_all_diagnosed"]
    rate = lambda t, k: "n/a" if not t else f"{k / t:.1f}"
    outcomes = ", ".join(f"{k} {v:.0f}" for k, v in sorted(w["outcomes"].items()))
    dropped = ", ".join(f"{k} {v:.0f}" for k, v in w["dropped"].items()) or "0"
    print(f"| {r['workers']} | {r['apply_s']:.1f} | {'n/a' if opened is None else f'{opened:.1f}'} | "
          f"{'timed out' if diag is None else f'{diag:.1f}'} | "
          f"{rate(opened, w['incidents_opened'])}, {rate(diag, w['diagnosis']['count'])} | "
          f"{ms(w['diagnosis']['p50_upper_s'])} / {ms(w['diagnosis']['p99_upper_s'])} | "
          f"{s(w['incident_wait']['p50_upper_s'])} / {s(w['incident_wait']['p99_upper_s'])} | {w['max_queue_depth']:.0f} | "
          f"{r['rss_idle_mib']:.0f} / {w['max_rss_mib']:.0f} | {outcomes} | "
          f"{c['by_status'].get('diagnosed', 0)} of {c['incidents']}, {c['with_proposals']}, "
          f"{c['workloads_with_more_than_one_incident']} | {dropped} |")
print()
print("| agent.workers | signal arrival → incident p50 / p99 | Warning Event write → kubemedic's watch (apiserver delivery) p50 / p99, events |")
print("|---|---|---|")
for r in rows:
    w = r["watch"]
    sh, wd = w["signal_handling"], w["watch_delivery"]
    print(f"| {r['workers']} | {ms(sh['p50_upper_s'])} / {ms(sh['p99_upper_s'])} | "
          f"{ms(wd['p50_upper_s'])} / {ms(wd['p99_upper_s'])}, {wd['count']:.0f} |")
PY
