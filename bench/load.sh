#!/usr/bin/env bash
# Load against a running instance: `bench/load.sh [URL]` (default http://127.0.0.1:8080/verify).
# Needs wrk (apt-get install wrk). Tokens come from `cargo run --release --example tokens`;
# start the service with the printed CLERK_JWT_KEY first. Pin for stable numbers, e.g.
# `taskset -c 1 clerk-forward-auth serve` and WRK_CPU=0.
# Knobs: DURATION (10 s), CONNS (64), SCENARIOS ("bearer mix rotate"), SESSIONS (rotate over
# only the first N tokens), TOKENS (bench/tokens).
set -euo pipefail
cd "$(dirname "$0")/.."
url=${1:-http://127.0.0.1:8080/verify}
export TOKENS=${TOKENS:-bench/tokens}
[ -f "$TOKENS/token-valid.txt" ] || cargo run --release --quiet --example tokens -- "$TOKENS" 10000
for scenario in ${SCENARIOS:-bearer mix rotate}; do
  printf '%-8s ' "$scenario"
  taskset -c "${WRK_CPU:-0}" wrk -t1 -c"${CONNS:-64}" -d"${DURATION:-10}s" --latency \
    -s "bench/lua/$scenario.lua" "$url" | tail -1
done
