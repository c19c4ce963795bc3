#!/usr/bin/env bash
# Warren and RabbitMQ side by side with warren-perf (the scenarios of issue 6), alternating
# brokers, RUNS runs each, the median of each figure and the ratio Warren / RabbitMQ, in
# one table.
#
#   benches/compare.sh                               # every scenario, starts both brokers
#   SCENARIOS="h i j" RUNS=1 benches/compare.sh      # a subset
#   SECONDS_PER_RUN=10 BACKLOG_MESSAGES=1000000 CONNECTIONS=10000 benches/compare.sh
#
# Scenarios: a b c d e e8 f g (throughput, msg/s consumed), h (1 M messages backlog with no
# consumer, then drain: drain and publish rates, broker RSS with the backlog in place),
# i (10 000 idle connections with one channel: opening rate, broker RSS per connection),
# j (fixed 5 000 msg/s of 1 KiB with confirms and acks: p99 latency), qq and qq8 (e and e8
# on a quorum queue: every message synced before its confirm), qc and bc (queue and
# binding churn, pairs/s). Memory is VmRSS from /proc/PID/status: Warren's process, and
# RabbitMQ's beam.smp. h and i start both brokers afresh for each run, as memory freed by
# an earlier scenario stays resident.
#
# RabbitMQ comes from Debian's package via ../shared/tools/rabbitmq-reference (or set
# RABBIT_URL, and RABBIT_PID for memory, to use a running one: then it is not restarted);
# Warren is built in release mode and started here.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
SCENARIOS=${SCENARIOS:-"a b c d e e8 f g h i j qq qq8 qc bc"}
BACKLOG=${BACKLOG_MESSAGES:-1000000}
CONNS=${CONNECTIONS:-10000}
BIN=${CARGO_TARGET_DIR:-target}/release
# i opens CONNS connections: the tool and each broker need that many descriptors and more.
# rabbitmq-reference raises its own limit to the hard one too (Debian's wrapper keeps 1024).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((CONNS + 512)) ]; then
    echo "compare.sh: ulimit -n is $(ulimit -n), scenario i needs more than $CONNS" >&2
fi
cargo build --release --quiet --bin warren --bin warren-perf
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
log() { echo "compare.sh: $*" >&2; }

work=$(mktemp -d)
wpid="" rpid="" rpid_beam=""
start_warren() {
    local port data
    port=$(free_port); data=$(mktemp -d "$work/warren.XXXX")
    WARREN_AMQP__LISTEN="127.0.0.1:$port" WARREN_MGMT__LISTEN=127.0.0.1:0 WARREN_PROMETHEUS__LISTEN=127.0.0.1:0 WARREN_STORAGE__DIR="$data" WARREN_LOG__LEVEL=warn \
        "$BIN/warren" >"$data.log" 2>&1 &
    wpid=$!
    wait_port "$port" || { log "Warren did not start: $data.log"; exit 1; }
    WARREN_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
}
stop_warren() { [ -z "$wpid" ] || { kill "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true; wpid=""; }; }
EXTERNAL_RABBIT=${RABBIT_URL:+1}
start_rabbit() {
    if [ -n "$EXTERNAL_RABBIT" ]; then
        rpid_beam=${RABBIT_PID:-$(pgrep -n beam.smp || true)}
        return
    fi
    local port
    port=$(free_port)
    ../shared/tools/rabbitmq-reference "$port" "$work/rabbit.$port" >"$work/rabbit.$port.log" 2>&1 &
    rpid=$!
    RABBIT_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
    wait_port "$port" || { log "RabbitMQ did not start: $work/rabbit.$port.log"; exit 1; }
    # The reference script execs rabbitmq-server, which execs erl, which execs beam.smp.
    rpid_beam=$rpid
    [ "$(cat "/proc/$rpid/comm" 2>/dev/null)" = beam.smp ] ||
        rpid_beam=$(pgrep -n -P "$rpid" beam.smp || true)
    sleep "${RABBIT_SETTLE:-5}" # the node goes on booting for a while after it listens
}
stop_rabbit() {
    [ -n "$EXTERNAL_RABBIT" ] || [ -z "$rpid" ] || { kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; rpid=""; }
}
trap 'stop_warren; stop_rabbit; rm -rf "$work"' EXIT
start_warren
start_rabbit

# name -> warren-perf arguments, and the figures to report: field:unit pairs, the first
# being the scenario's own row; derived fields are computed in figure() below.
declare -A SCEN=(
  [a]="-x 1 -y 1 -s 16 -z $SECS"
  [b]="-x 1 -y 1 -s 1024 -c 100 -a 100 -P 1000 -z $SECS"
  [c]="-x 1 -y 1 -s 16384 -z $SECS"
  [d]="-x 1 -y 10 --queues 10 -e perf-fanout -t fanout -k '' -s 256 -z $SECS"
  [e]="-x 1 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 -z $SECS"
  [e8]="-x 8 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 -z $SECS"
  [f]="-x 4 -y 4 --queues 4 -s 256 -z $SECS"
  [g]="-x 1 -y 1 -e perf-topic -t topic -k a.b.c --bindings 1000 -s 256 -z $SECS"
  [h]="backlog -x 1 -C $BACKLOG -s 256 -c 1000 -y 1 -a 100 -P 1000"
  [i]="connections -n $CONNS --channels 1 --concurrency 200 -z 3"
  [j]="-x 1 -y 1 -s 1024 -r 5000 -c 100 -a 100 -P 1000 -z $SECS"
  [qq]="-x 1 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 --queue-args '{\"x-queue-type\":\"quorum\"}' -z $SECS"
  [qq8]="-x 8 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 --queue-args '{\"x-queue-type\":\"quorum\"}' -z $SECS"
  [qc]="queue-churn -x 1 --inflight 10 -z $SECS"
  [bc]="bind-churn -x 1 --inflight 10 -z $SECS"
)
declare -A FIGS=(
  [h]="drain_rate:msg/s rss_backlog_mib:MiB_RSS_with_backlog publish_rate:msg/s_published"
  [i]="open_rate:connections/s rss_per_connection_kib:KiB_RSS/connection"
  [j]="p99_us:µs_p99_latency received_rate:msg/s"
  [qc]="rate:queues/s"
  [bc]="rate:bindings/s"
)
FRESH=" h i "
# figure JSON FIELD: one number from a JSON line, or a derived one.
figure() {
    python3 -c '
import json, sys
j = json.loads(sys.argv[1]); f = sys.argv[2]
kib = lambda k: j[k] if j.get(k) is not None else float("nan")
v = {
    "rss_backlog_mib": lambda: kib("rss_backlog_kib") / 1024,
    "rss_per_connection_kib": lambda: kib("rss_per_connection_bytes") / 1024,
    "p99_us": lambda: j["latency_us"]["p99"],
}.get(f, lambda: j[f])()
print(round(v, 1) if isinstance(v, float) else v)' "$1" "$2"
}
run_tool() { # URL PID SCENARIO -> the JSON line
    local out
    out=$(eval "\"$BIN/warren-perf\" --uri \"$1\" ${SCEN[$3]} --pid \"$2\" --json" | tail -1)
    case "$out" in *'"failed":'[1-9]*) log "$3: some connections failed" ;; esac
    log "$3 $1: $out"
    echo "$out"
}
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

rows=()
for s in $SCENARIOS; do
    [ -n "${SCEN[$s]:-}" ] || { log "unknown scenario $s"; continue; }
    figs=${FIGS[$s]:-received_rate:msg/s}
    declare -A W=() R=()
    for n in $(seq "$RUNS"); do
        if [[ "$FRESH" == *" $s "* ]]; then
            log "$s run $n: restarting both brokers"
            stop_warren; start_warren
            [ -n "$EXTERNAL_RABBIT" ] || { stop_rabbit; start_rabbit; }
        fi
        log "$s run $n: Warren"
        wj=$(run_tool "$WARREN_URL" "$wpid" "$s")
        log "$s run $n: RabbitMQ"
        rj=$(run_tool "$RABBIT_URL" "${rpid_beam:-0}" "$s")
        for fu in $figs; do
            f=${fu%%:*}
            W[$f]+="$(figure "$wj" "$f") "; R[$f]+="$(figure "$rj" "$f") "
        done
    done
    first=1
    for fu in $figs; do
        f=${fu%%:*}; unit=${fu#*:}; unit=${unit//_/ }
        wm=$(printf '%s\n' ${W[$f]} | median); rm_=$(printf '%s\n' ${R[$f]} | median)
        ratio=$(python3 -c "import math; w,r=float('$wm'),float('$rm_'); x=w/r if r else math.nan; print(round(x,1) if x>=1 else round(x,3))")
        label=$s; [ $first = 1 ] || label="$s ($f)"
        flags=${SCEN[$s]}; [ $first = 1 ] || flags="(same run)"
        rows+=("$(printf '| %s | `%s` | %s | %s | %sx | %s |' "$label" "$flags" "$wm" "$rm_" "$ratio" "$unit")")
        first=0
    done
    unset W R
done
printf '| scenario | warren-perf flags | Warren | RabbitMQ | ratio W/R | unit |\n|---|---|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
