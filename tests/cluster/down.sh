#!/usr/bin/env bash
# Stop what up.sh started in STATEDIR: exactly the processes named by STATEDIR/*.pid (TERM, then
# KILL after 10s), and remove etcd's data directory when it lives outside STATEDIR (/dev/shm).
# Usage: down.sh STATEDIR
set -uo pipefail
DIR=${1:?usage: down.sh STATEDIR}
[ -d "$DIR" ] || exit 0
pids=()
for f in "$DIR"/*.pid; do
  [ -f "$f" ] || continue
  pid=$(cat "$f")
  if [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null && pids+=("$pid"); fi
  rm -f "$f"
done
for _ in $(seq 50); do
  alive=()
  for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
  [ ${#alive[@]} -eq 0 ] && break
  sleep 0.2
done
for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null; done
if [ -f "$DIR/etcd-data.path" ]; then
  data=$(cat "$DIR/etcd-data.path")
  case "$data" in /dev/shm/kubemedic-etcd.*) rm -rf "$data" ;; esac
  rm -f "$DIR/etcd-data.path"
fi
echo "control plane in $DIR stopped"
