#!/usr/bin/env bash
# Streams, Warren and RabbitMQ side by side with warren-perf's stream mode (issue 13,
# "Speed"), brokers alternated run by run, RUNS runs each, the median of each figure and
# the ratio Warren / RabbitMQ, in one table.
#
#   benches/stream.sh                                  # every scenario, starts both brokers
#   SCENARIOS="stream-16 stream-1k" RUNS=1 benches/stream.sh
#   WARREN=0 benches/stream.sh                         # RabbitMQ only
#   SECONDS_PER_RUN=10 CATCHUP_BYTES=1GiB benches/stream.sh
#   NO_BUILD=1 benches/stream.sh                       # target/release as it is
#
# Scenarios (one publisher, one consumer, the publisher keeps -c 1000 unconfirmed):
#   amqp-16, amqp-1k       a stream over AMQP 0-9-1, 16 B / 1 KiB bodies, publish with
#                          confirms and consume from first (qos 1000, ack every 500):
#                          consume rate, confirm rate, p99 latency
#   stream-16, stream-1k   the same over the stream protocol (credit 10 chunks)
#   catchup-stream         CATCHUP_BYTES (1 GiB) of 1 KiB messages written first, then read
#                          from first over the stream protocol: MB/s and msg/s, and the
#                          broker's VmRSS before writing, highest while reading, and after
#   catchup-amqp           the same over AMQP 0-9-1
# The catch-up scenarios start both brokers afresh for each run (memory freed by an earlier
# run stays resident), unless they run first.
#
# RabbitMQ 3.10 comes from Debian's package via ../shared/tools/rabbitmq-reference with the
# rabbitmq_stream plugin (its stream port is the AMQP port - 120), or set RABBIT_URL,
# RABBIT_STREAM_URL (default: RABBIT_URL's port - 120) and RABBIT_PID to use a running one
# (then it is not restarted). Warren is built in release mode and started here (or set
# WARREN_URL, WARREN_STREAM_URL and WARREN_PID to use a running one), with its stream
# listener (WARREN_STREAM__LISTEN) once conf/warren.toml has a [stream] section.
#
# Cells Warren cannot fill yet read n/a: the stream-protocol scenarios while Warren has no
# stream listener, and the AMQP ones while it does not keep stream semantics (a probe: two
# consumers from first must each read every message; a queue that hands each message to
# one consumer fails it).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
CATCHUP=${CATCHUP_BYTES:-1GiB}
SCENARIOS=${SCENARIOS:-"amqp-16 amqp-1k stream-16 stream-1k catchup-stream catchup-amqp"}
WARREN=${WARREN:-1}
BIN=${CARGO_TARGET_DIR:-target}/release
if [ -n "${NO_BUILD:-}" ]; then
    : # the binaries in $BIN as they are
elif [ "$WARREN" = 1 ] && [ -z "${WARREN_URL:-}" ]; then
    cargo build --release --quiet --bin warren --bin warren-perf
else
    cargo build --release --quiet --bin warren-perf
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
log() { echo "stream.sh: $*" >&2; }
port_of() { local hp=${1#*@}; hp=${hp%%/*}; echo "${hp##*:}"; }

work=$(mktemp -d)
wpid="" rpid="" rpid_beam=""
WARREN_STREAM_LISTENER=""
grep -q '^\[stream\]' conf/warren.toml && WARREN_STREAM_LISTENER=1
EXTERNAL_WARREN=${WARREN_URL:+1}
start_warren() {
    [ "$WARREN" = 1 ] || return 0
    if [ -n "$EXTERNAL_WARREN" ]; then
        wpid=${WARREN_PID:-$(pgrep -n -x warren || true)}
        return
    fi
    local port sport data
    port=$(free_port); data=$(mktemp -d "$work/warren.XXXX")
    local env=(WARREN_AMQP__LISTEN="127.0.0.1:$port" WARREN_MGMT__LISTEN=127.0.0.1:0
        WARREN_PROMETHEUS__LISTEN=127.0.0.1:0 WARREN_STORAGE__DIR="$data" WARREN_LOG__LEVEL=warn)
    WARREN_STREAM_URL=""
    if [ -n "$WARREN_STREAM_LISTENER" ]; then
        sport=$(free_port)
        env+=(WARREN_STREAM__LISTEN="127.0.0.1:$sport")
        WARREN_STREAM_URL="rabbitmq-stream://guest:guest@127.0.0.1:$sport/%2f"
    fi
    env "${env[@]}" "$BIN/warren" >"$data.log" 2>&1 &
    wpid=$!
    wait_port "$port" || { log "Warren did not start: $(cat "$data.log")"; exit 1; }
    WARREN_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
    if [ -n "$WARREN_STREAM_URL" ]; then
        wait_port "$sport" || { log "Warren's stream listener is not up: $data.log"; WARREN_STREAM_URL=""; }
    fi
}
stop_warren() {
    [ -z "$EXTERNAL_WARREN" ] && [ -n "$wpid" ] || return 0
    kill "$wpid" 2>/dev/null || true; wait "$wpid" 2>/dev/null || true; wpid=""
}
EXTERNAL_RABBIT=${RABBIT_URL:+1}
start_rabbit() {
    if [ -n "$EXTERNAL_RABBIT" ]; then
        rpid_beam=${RABBIT_PID:-$(pgrep -n beam.smp || true)}
        RABBIT_STREAM_URL=${RABBIT_STREAM_URL:-"rabbitmq-stream://guest:guest@127.0.0.1:$(( $(port_of "$RABBIT_URL") - 120 ))/%2f"}
        return
    fi
    local port
    port=$(free_port)
    while [ "$port" -lt 1200 ] || (exec 3<>"/dev/tcp/127.0.0.1/$((port - 120))") 2>/dev/null; do port=$(free_port); done
    RABBITMQ_PLUGINS="rabbitmq_stream" ../shared/tools/rabbitmq-reference "$port" "$work/rabbit.$port" >"$work/rabbit.$port.log" 2>&1 &
    rpid=$!
    RABBIT_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
    RABBIT_STREAM_URL="rabbitmq-stream://guest:guest@127.0.0.1:$((port - 120))/%2f"
    wait_port "$port" || { log "RabbitMQ did not start: $work/rabbit.$port.log"; exit 1; }
    wait_port $((port - 120)) || { log "RabbitMQ's stream listener did not start: $work/rabbit.$port.log"; exit 1; }
    # The reference script execs rabbitmq-server, which execs erl, which execs beam.smp.
    rpid_beam=$rpid
    [ "$(cat "/proc/$rpid/comm" 2>/dev/null)" = beam.smp ] ||
        rpid_beam=$(pgrep -n -P "$rpid" beam.smp || true)
    sleep "${RABBIT_SETTLE:-5}" # the node goes on booting for a while after it listens
}
stop_rabbit() {
    [ -z "$EXTERNAL_RABBIT" ] && [ -n "$rpid" ] || return 0
    kill "$rpid" 2>/dev/null || true; wait "$rpid" 2>/dev/null || true; rpid=""
}
trap 'stop_warren; stop_rabbit; rm -rf "$work"' EXIT

# Does the broker at AMQP URL $1 keep stream semantics? Two consumers from first must each
# read all 100 messages (200 in all); a classic queue shares them out and stops at 100.
amqp_streams() {
    local out
    out=$("$BIN/warren-perf" stream --uri "$1" --prefill 100 -y 2 -z 5 --json 2>/dev/null | tail -1) || return 1
    python3 -c 'import json, sys; j = json.loads(sys.argv[1]); sys.exit(0 if j["consumed"] == j["expected"] == 200 else 1)' "$out"
}

start_warren
start_rabbit
WARREN_AMQP_STREAMS=""
if [ "$WARREN" = 1 ]; then
    if amqp_streams "$WARREN_URL"; then WARREN_AMQP_STREAMS=1; else log "Warren keeps no stream semantics over AMQP yet: its AMQP cells read n/a"; fi
    [ -n "${WARREN_STREAM_URL:-}" ] || log "Warren has no stream listener yet: its stream-protocol cells read n/a"
fi

STREAM_FLAGS="--protocol stream -c 1000 --credit 10"
AMQP_FLAGS="--protocol amqp -c 1000 -q 1000 -a 500"
declare -A SCEN=(
  [amqp-16]="$AMQP_FLAGS -x 1 -y 1 -s 16 --offset first -z $SECS"
  [amqp-1k]="$AMQP_FLAGS -x 1 -y 1 -s 1024 --offset first -z $SECS"
  [stream-16]="$STREAM_FLAGS -x 1 -y 1 -s 16 --offset first -z $SECS"
  [stream-1k]="$STREAM_FLAGS -x 1 -y 1 -s 1024 --offset first -z $SECS"
  [catchup-stream]="$STREAM_FLAGS -x 1 -y 1 -s 1024 --prefill-bytes $CATCHUP"
  [catchup-amqp]="$AMQP_FLAGS -x 1 -y 1 -s 1024 --prefill-bytes $CATCHUP"
)
LIVE="received_rate:msg/s_consumed confirm_rate:msg/s_confirmed p99_us:µs_p99_latency"
CATCHUP_FIGS="read_mb_s:MB/s_read read_rate:msg/s_read rss_before_mib:MiB_RSS_before rss_read_max_mib:MiB_RSS_max_while_reading rss_after_mib:MiB_RSS_after"
FRESH=" catchup-stream catchup-amqp "
figure() { # JSON FIELD: one number from a JSON line, or a derived one; nan when missing
    python3 -c '
import json, sys
try:
    j = json.loads(sys.argv[1]); f = sys.argv[2]
    kib = lambda k: j[k] / 1024 if j.get(k) is not None else float("nan")
    v = {
        "p99_us": lambda: j["latency_us"]["p99"],
        "rss_before_mib": lambda: kib("rss_before_kib"),
        "rss_read_max_mib": lambda: kib("rss_read_max_kib"),
        "rss_after_mib": lambda: kib("rss_after_kib"),
    }.get(f, lambda: j[f])()
    print(round(v, 1) if isinstance(v, float) else v)
except Exception:
    print("nan")' "$1" "$2"
}
run_tool() { # URL PID SCENARIO -> the JSON line (empty when the run failed)
    local out limit=$((SECS * 3 + 120))
    case "$3" in catchup-*) limit=${CATCHUP_TIMEOUT:-1800} ;; esac
    if out=$(timeout "$limit" "$BIN/warren-perf" stream --uri "$1" ${SCEN[$3]} --pid "$2" --json 2>"$work/err" | tail -1) && [ -n "$out" ]; then
        log "$3 $1: $out"
        echo "$out"
    else
        log "$3 $1: failed: $(cat "$work/err")"
    fi
}
url_for() { # BROKER SCENARIO -> the URL to use, empty when the broker cannot run it
    local proto=amqp
    case "$2" in stream-*|catchup-stream) proto=stream ;; esac
    case "$1:$proto" in
        warren:amqp) [ -n "$WARREN_AMQP_STREAMS" ] && echo "$WARREN_URL" ;;
        warren:stream) echo "${WARREN_STREAM_URL:-}" ;;
        rabbit:amqp) echo "$RABBIT_URL" ;;
        rabbit:stream) echo "$RABBIT_STREAM_URL" ;;
    esac
}
median() { { grep -v -i '^nan$' || true; } | sort -g | awk '{a[NR]=$1} END {print NR ? a[int((NR+1)/2)] : "n/a"}'; }

rows=() used=""
for s in $SCENARIOS; do
    [ -n "${SCEN[$s]:-}" ] || { log "unknown scenario $s"; continue; }
    figs=$LIVE; [[ "$FRESH" == *" $s "* ]] && figs=$CATCHUP_FIGS
    declare -A W=() R=()
    for n in $(seq "$RUNS"); do
        if [[ "$FRESH" == *" $s "* ]] && [ -n "$used" ]; then
            log "$s run $n: restarting both brokers"
            stop_warren; start_warren
            stop_rabbit; start_rabbit
        fi
        wj="" rj=""
        if [ "$WARREN" = 1 ] && wu=$(url_for warren "$s") && [ -n "$wu" ]; then
            log "$s run $n: Warren"
            wj=$(run_tool "$wu" "${wpid:-0}" "$s")
        fi
        log "$s run $n: RabbitMQ"
        rj=$(run_tool "$(url_for rabbit "$s")" "${rpid_beam:-0}" "$s")
        used=1
        for fu in $figs; do
            f=${fu%%:*}
            W[$f]+="$(figure "$wj" "$f") "; R[$f]+="$(figure "$rj" "$f") "
        done
    done
    first=1
    for fu in $figs; do
        f=${fu%%:*}; unit=${fu#*:}; unit=${unit//_/ }
        wm=$(printf '%s\n' ${W[$f]} | median); rm_=$(printf '%s\n' ${R[$f]} | median)
        ratio=$(python3 -c "
try:
    w, r = float('$wm'), float('$rm_'); x = w / r
    print(f'{round(x, 1) if x >= 1 else round(x, 3)}x')
except Exception:
    print('n/a')")
        label=$s; [ $first = 1 ] || label="$s ($f)"
        flags=${SCEN[$s]}; [ $first = 1 ] || flags="(same run)"
        rows+=("$(printf '| %s | `%s` | %s | %s | %s | %s |' "$label" "$flags" "$wm" "$rm_" "$ratio" "$unit")")
        first=0
    done
    unset W R
done
printf '| scenario | warren-perf stream flags | Warren | RabbitMQ | ratio W/R | unit |\n|---|---|---|---|---|---|\n'
printf '%s\n' "${rows[@]}"
