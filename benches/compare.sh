#!/usr/bin/env bash
# Side-by-side throughput of Warren and RabbitMQ with warren-perf (issue 6 scenarios that
# the load tool supports so far), alternating brokers, RUNS runs each, median and ratio.
#
#   benches/compare.sh            # starts both brokers itself
#   SECONDS_PER_RUN=10 RUNS=3 benches/compare.sh
#
# RabbitMQ comes from Debian's package via ../shared/tools/rabbitmq-reference (or set
# RABBIT_URL to use a running one); Warren is built in release mode and started here.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
cargo build --release --quiet --bin warren --bin warren-perf
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

wport=$(free_port); wdata=$(mktemp -d)
WARREN_AMQP__LISTEN="127.0.0.1:$wport" WARREN_STORAGE__DIR="$wdata" WARREN_LOG__LEVEL=warn \
    target/release/warren >"$wdata/log" 2>&1 &
wpid=$!
pids="$wpid"
if [ -z "${RABBIT_URL:-}" ]; then
    rport=$(free_port)
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    ../shared/tools/rabbitmq-reference "$rport" >/tmp/compare-rabbit.log 2>&1 &
    pids="$pids $!"
    RABBIT_URL="amqp://guest:guest@127.0.0.1:$rport/%2f"
    wait_port "$rport"
fi
trap 'kill $pids 2>/dev/null || true' EXIT
wait_port "$wport"
WARREN_URL="amqp://guest:guest@127.0.0.1:$wport/%2f"

declare -A SCEN=(
  [a]="-x 1 -y 1 -s 16"
  [b]="-x 1 -y 1 -s 1024 -c 100 -a 100 -P 1000"
  [c]="-x 1 -y 1 -s 16384"
  [d]="-x 1 -y 10 --queues 10 -e perf-fanout -t fanout -k '' -s 256"
  [f]="-x 4 -y 4 --queues 4 -s 256"
  [g]="-x 1 -y 1 -e perf-topic -t topic -k a.b.c --bindings 1000 -s 256"
)
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| scenario | flags | Warren msg/s | RabbitMQ msg/s | ratio |\n|---|---|---|---|---|\n'
for s in a b c d f g; do
    w=(); r=()
    for _ in $(seq "$RUNS"); do
        w+=("$(eval target/release/warren-perf --uri "$WARREN_URL" ${SCEN[$s]} -z "$SECS" --json | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["received_rate"])')")
        r+=("$(eval target/release/warren-perf --uri "$RABBIT_URL" ${SCEN[$s]} -z "$SECS" --json | tail -1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["received_rate"])')")
    done
    wm=$(printf '%s\n' "${w[@]}" | median); rm_=$(printf '%s\n' "${r[@]}" | median)
    printf '| %s | `%s` | %s | %s | %sx |\n' "$s" "${SCEN[$s]}" "$wm" "$rm_" "$(python3 -c "print(round($wm/max($rm_,1),1))")"
done
