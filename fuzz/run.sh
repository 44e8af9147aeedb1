#!/usr/bin/env bash
# Run kubemedic's fuzz targets one after another, each for a time budget.
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     default: 600 s, every target
#   fuzz/run.sh --replay [TARGET...]                  run the seeds and the corpus once (no fuzzing)
#
# Needs the nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`,
# `cargo install cargo-fuzz --locked`). Builds with debug assertions (overflow
# checks) into fuzz/target: sanitizer builds cannot share the stable cache.
# New inputs go to fuzz/corpus/TARGET (git-ignored, kept between runs), crashes
# to fuzz/artifacts/TARGET; the committed seeds are fuzz/seeds/TARGET.
# Reproduce a crash: cargo +nightly fuzz run -a TARGET fuzz/artifacts/TARGET/crash-...
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="$PWD/target"

all=(alert_payload slack_interaction rule_files)
mode=fuzz budget=600
if [[ ${1:-} == --replay ]]; then
    mode=replay
    shift
elif [[ ${1:-} =~ ^[0-9]+$ ]]; then
    budget=$1
    shift
fi
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")

status=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    if [[ $mode == replay ]]; then
        args=(-runs=0)
    else
        # One job: the machine is shared. Inputs up to 8 KiB reach the alert receiver's 4 KiB body limit.
        args=(-max_total_time="$budget" -rss_limit_mb=2048 -max_len=8192 -timeout=10 -print_final_stats=1)
    fi
    if [[ $mode == replay ]]; then echo "== $t: replay"; else echo "== $t: ${budget}s"; fi
    if ! cargo +nightly fuzz run -a "$t" "corpus/$t" "seeds/$t" -- "${args[@]}"; then
        echo "!! $t failed: see fuzz/artifacts/$t" >&2
        status=1
    fi
done
exit $status
