#!/usr/bin/env bash
# Broker CPU per consumed message, two or more Warren builds alternated (docs/BENCHMARKS.md,
# "CPU per message: profiles").
#
#   benches/cpu_ab.sh ROUNDS SECONDS BINARY...    e.g. benches/cpu_ab.sh 3 5 /tmp/warren.base target/release/warren
#
# Each round starts each binary afresh (empty storage dir), runs lavinmqperf for each
# scenario in SCENARIOS (default "e f", the flags of benches/compare.sh) and prints
# "ROUND BINARY SCENARIO msg/s µs/msg": the broker's utime + stime (/proc/PID/stat) around
# the tool's run, divided by the messages it consumed, as compare.sh computes it.
# LAVINMQPERF: the tool (default: what ../shared/tools/lavinmq-reference --build-only
# prints last). PORT: where the brokers listen (default 25690).
set -euo pipefail
ROUNDS=$1 SECS=$2; shift 2
PORT=${PORT:-25690}
LAVINMQPERF=${LAVINMQPERF:-$("$(dirname "$0")/../../shared/tools/lavinmq-reference" --build-only | tail -1)}
declare -A FLAGS=([e]="-x 1 -y 1 -s 1024 -p -c 100 -a 100 -P 1000" [f]="-x 4 -y 4 -s 256")
cpu_us() {
    python3 -c 'import os, sys; f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(f[11]) + int(f[12])) * 10**6 // os.sysconf("SC_CLK_TCK"))' "$1"
}
data=$(mktemp -d)
trap 'rm -rf "$data"' EXIT
for r in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        rm -rf "$data/w"; mkdir "$data/w"
        WARREN_AMQP__LISTEN="127.0.0.1:$PORT" WARREN_MGMT__LISTEN=127.0.0.1:0 WARREN_PROMETHEUS__LISTEN=127.0.0.1:0 \
            WARREN_STORAGE__DIR="$data/w" WARREN_LOG__LEVEL=warn "$bin" >"$data/log" 2>&1 &
        pid=$!
        for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
        for s in ${SCENARIOS:-e f}; do
            t0=$(cpu_us "$pid")
            # shellcheck disable=SC2086
            out=$("$LAVINMQPERF" throughput --uri="amqp://guest:guest@127.0.0.1:$PORT/%2f" ${FLAGS[$s]} \
                -u "cpu-ab-$s-$RANDOM" -z "$SECS" -q -j | tail -1)
            t1=$(cpu_us "$pid")
            python3 -c '
import json, sys
j = json.loads(sys.argv[1]); n = j["avg_consume_rate"] * j["elapsed_seconds"]
print(sys.argv[4], sys.argv[5], sys.argv[6], round(j["avg_consume_rate"]), round((int(sys.argv[3]) - int(sys.argv[2])) / n, 2))' \
                "$out" "$t0" "$t1" "$r" "$bin" "$s"
        done
        kill "$pid"; wait "$pid" 2>/dev/null || true
    done
done
