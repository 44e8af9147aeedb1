# Sourced by tests/tools/install.sh and scripts/demo.sh: long steps say that they are still running.
#
#   heartbeat "building the control plane (about 3 min on 2 cores)" bash tests/cluster/build.sh
#
# Runs the command and, while it runs, shows the elapsed time on stderr: one line redrawn in
# place on a terminal, a plain line every 10 s anywhere else (a file, a pipe, a CI log).
# Returns the command's exit status.
heartbeat() {
  local label=$1; shift
  local start=$SECONDS pid t
  "$@" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    t=$((SECONDS - start))
    if [ -t 2 ]; then
      printf '\r... %s: %dm%02ds ' "$label" $((t / 60)) $((t % 60)) >&2
    elif [ $((t % 10)) -eq 0 ]; then
      echo "... $label: still running (${t}s)" >&2
    fi
  done
  if [ -t 2 ]; then printf '\n' >&2; fi
  wait "$pid"
}
