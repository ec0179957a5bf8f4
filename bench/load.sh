#!/usr/bin/env bash
# Load against a running instance: `bench/load.sh [URL]` (default http://127.0.0.1:8080/verify).
# Needs wrk (apt-get install wrk). Tokens come from `cargo run --release --example tokens`;
# start the service with the printed CLERK_JWT_KEY first. Pin for stable numbers, e.g.
# `taskset -c 1 clerk-forward-auth serve` and WRK_CPU=0.
# Knobs: DURATION (10 s), CONNS (64), SCENARIOS ("bearer cookie mix rotate"), SESSIONS (rotate over
# only the first N tokens), TOKENS (bench/tokens), PID (the server's process on this machine:
# adds the CPU it spent per request, user and kernel, which is what sizes a deployment).
set -euo pipefail
cd "$(dirname "$0")/.."
url=${1:-http://127.0.0.1:8080/verify}
export TOKENS=${TOKENS:-bench/tokens}
[ -f "$TOKENS/cookie-valid.txt" ] || cargo run --release --quiet --example tokens -- "$TOKENS" 10000
# utime and stime in clock ticks; the name field before them may hold spaces, so count back
# from the end of it.
cpu_ticks() { sed 's/.*) //' "/proc/$PID/stat" | awk '{print $12, $13}'; }
for scenario in ${SCENARIOS:-bearer cookie mix rotate}; do
  printf '%-8s ' "$scenario"
  [ -z "${PID:-}" ] || read -r user0 sys0 < <(cpu_ticks)
  out=$(taskset -c "${WRK_CPU:-0}" wrk -t1 -c"${CONNS:-64}" -d"${DURATION:-10}s" --latency \
    -s "bench/lua/$scenario.lua" "$url")
  summary=$(tail -1 <<<"$out")
  if [ -n "${PID:-}" ]; then
    read -r user1 sys1 < <(cpu_ticks)
    requests=$(sed -n 's/.* requests \([0-9]*\) .*/\1/p' <<<"$summary")
    summary+=$(awk -v u=$((user1 - user0)) -v s=$((sys1 - sys0)) -v n="$requests" \
      -v hz="$(getconf CLK_TCK)" 'BEGIN {
        if (n > 0) printf "  cpu/req %.1f µs (user %.1f, kernel %.1f)", (u + s) * 1e6 / hz / n,
          u * 1e6 / hz / n, s * 1e6 / hz / n }')
  fi
  printf '%s\n' "$summary"
done
