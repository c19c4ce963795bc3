#!/usr/bin/env bash
# Warren, RabbitMQ 3.10 and LavinMQ 1.1.5 side by side (issue 15, "The measure" and
# "Memory"): brokers alternated run by run, RUNS runs each, medians, ratios Warren/RabbitMQ
# and Warren/LavinMQ, one markdown table per measure on stdout (each run's JSON on stderr).
#
#   benches/compare.sh                                  # everything, starts all three brokers
#   SCENARIOS="a b" TOOLS=lapin RUNS=1 benches/compare.sh  # a subset
#   BROKERS="warren rabbitmq" benches/compare.sh        # without LavinMQ
#
# Measures (docs/BENCHMARKS.md, "Three load tools, three measures"):
#   throughput   msg/s consumed, per scenario and load tool: warren-perf (Warren's own
#                pipelined tool: what the broker can do), lapin (warren-perf --client lapin,
#                an ordinary client library: what a user with an ordinary client on one
#                machine sees), lavinmqperf (LavinMQ's tool, a third opinion)
#   cpu          the broker's CPU time (user + system, /proc/PID/stat) over the measured
#                window divided by the messages consumed in it, µs
#   memory       broker RSS growth per object: queued 16 B message (transient, persistent),
#                idle queue, consumer, idle connection; and under a slow consumer (ms: RSS
#                growth at most over SLOW_SECONDS, and its slope after a warm-up)
# Throughput scenarios, all three tools: a 16 B; b 1 KiB with confirms and acks; c 16 KiB;
# e persistent 1 KiB with confirms and acks; f 4 publishers / 4 consumers, 256 B.
# Other scenarios (warren-perf only): d e8 g j qq qq8 qc bc, and h (1 M message backlog
# drained), i (idle connections; also in the memory table), mo (many objects: a 16 B
# publisher/consumer pair measured alone, then beside IDLE_QUEUES idle queues and CONNECTIONS
# idle connections; broker CPU µs/msg and msg/s of both and the ratio of CPU per message).
# Memory scenarios: mq mqp mi mc ms (and i). Memory scenarios start every broker afresh for
# each run (memory freed earlier
# stays resident and would be reused).
#
# Settings (environment): RUNS (3), SECONDS_PER_RUN (10), SCENARIOS, TOOLS ("warren-perf
# lapin lavinmqperf"), BROKERS ("warren rabbitmq lavinmq"), MEM_RUNS (1), MEM_MESSAGES
# (1000000), IDLE_QUEUES (100000; LAVIN_IDLE_QUEUES 5000), CONSUMERS (10000), CONNECTIONS
# (10000), BACKLOG_MESSAGES (1000000), SLOW_SECONDS (60).
# RabbitMQ: started by ../shared/tools/rabbitmq-reference, or RABBIT_URL (and RABBIT_PID for
# CPU and memory) to use a running one. LavinMQ: ../shared/tools/lavinmq-reference (builds
# LavinMQ and lavinmqperf on first use, about 7 minutes), or LAVIN_URL and LAVIN_PID.
# LAVINMQPERF names the tool; when it cannot be found its column is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
THREE="a b c e f"
MEMORY="mq mqp mi mc ms i"
OTHER="d e8 g h j qq qq8 qc bc mo"
SCENARIOS=${SCENARIOS:-"$THREE $MEMORY $OTHER"}
TOOLS=${TOOLS:-"warren-perf lapin lavinmqperf"}
BROKERS=${BROKERS:-"warren rabbitmq lavinmq"}
MEM_MESSAGES=${MEM_MESSAGES:-1000000}
IDLE_QUEUES=${IDLE_QUEUES:-100000}
# LavinMQ 1.1.5 declares queues at about 100/s, slower as they accumulate (each queue has its
# own message files): 100 000 would take hours, so it gets fewer.
LAVIN_IDLE_QUEUES=${LAVIN_IDLE_QUEUES:-5000}
# Memory runs restart every broker and take minutes each (RabbitMQ declares about 600
# queues/s); their figures are medians of MEM_RUNS runs.
MEM_RUNS=${MEM_RUNS:-1}
CONSUMERS=${CONSUMERS:-10000}
CONNS=${CONNECTIONS:-10000}
SLOW_SECS=${SLOW_SECONDS:-60}
BACKLOG=${BACKLOG_MESSAGES:-1000000}
BIN=${CARGO_TARGET_DIR:-target}/release
TOOLS_DIR=../shared/tools
log() { echo "compare.sh: $*" >&2; }
has() { [[ " $1 " == *" $2 "* ]]; } # has LIST WORD

# i opens CONNS connections: the tool and each broker need that many descriptors and more.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge $((CONNS + 512)) ] || log "ulimit -n is $(ulimit -n), scenario i needs more than $CONNS"
cargo build --release --quiet --bin warren --bin warren-perf
if { has "$TOOLS" lavinmqperf && [ -z "${LAVINMQPERF:-}" ]; } || { has "$BROKERS" lavinmq && [ -z "${LAVIN_URL:-}" ]; }; then
    if ! paths=$("$TOOLS_DIR/lavinmq-reference" --build-only); then
        log "LavinMQ could not be built: no LavinMQ column, no lavinmqperf rows"
        BROKERS=${BROKERS//lavinmq/}; TOOLS=${TOOLS//lavinmqperf/}
    fi
    LAVINMQPERF=${LAVINMQPERF:-$(echo "${paths:-}" | tail -1)}
fi
if has "$TOOLS" lavinmqperf && [ ! -x "${LAVINMQPERF:-}" ]; then
    log "lavinmqperf not found (set LAVINMQPERF): its rows are skipped"
    TOOLS=${TOOLS//lavinmqperf/}
fi

# --- brokers: start_NAME sets URL[NAME] and PID[NAME] (the process whose CPU and RSS count).
work=$(mktemp -d)
declare -A URL=() PID=() JOB=()
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 600); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
start_warren() {
    local port data
    port=$(free_port); data=$(mktemp -d "$work/warren.XXXX")
    WARREN_AMQP__LISTEN="127.0.0.1:$port" WARREN_MGMT__LISTEN=127.0.0.1:0 WARREN_PROMETHEUS__LISTEN=127.0.0.1:0 \
        WARREN_STORAGE__DIR="$data" WARREN_LOG__LEVEL=warn "$BIN/warren" >"$data.log" 2>&1 &
    JOB[warren]=$! PID[warren]=$!
    URL[warren]="amqp://guest:guest@127.0.0.1:$port/%2f"
    wait_port "$port" || { log "Warren did not start: $data.log"; exit 1; }
}
start_rabbitmq() {
    if [ -n "${RABBIT_URL:-}" ]; then
        URL[rabbitmq]=$RABBIT_URL PID[rabbitmq]=${RABBIT_PID:-$(pgrep -n beam.smp || echo 0)}
        return
    fi
    local port; port=$(free_port)
    "$TOOLS_DIR/rabbitmq-reference" "$port" "$work/rabbit.$port" >"$work/rabbit.$port.log" 2>&1 &
    JOB[rabbitmq]=$!
    URL[rabbitmq]="amqp://guest:guest@127.0.0.1:$port/%2f"
    wait_port "$port" || { log "RabbitMQ did not start: $work/rabbit.$port.log"; exit 1; }
    # The reference script execs rabbitmq-server, which execs erl, which execs beam.smp.
    PID[rabbitmq]=${JOB[rabbitmq]}
    [ "$(cat "/proc/${JOB[rabbitmq]}/comm" 2>/dev/null)" = beam.smp ] ||
        PID[rabbitmq]=$(pgrep -n -P "${JOB[rabbitmq]}" beam.smp || echo 0)
    sleep "${RABBIT_SETTLE:-5}" # the node goes on booting for a while after it listens
}
start_lavinmq() {
    if [ -n "${LAVIN_URL:-}" ]; then
        URL[lavinmq]=$LAVIN_URL PID[lavinmq]=${LAVIN_PID:-$(pgrep -n -x lavinmq || echo 0)}
        return
    fi
    local port; port=$(free_port)
    "$TOOLS_DIR/lavinmq-reference" "$port" "$work/lavin.$port" >"$work/lavin.$port.log" 2>&1 &
    JOB[lavinmq]=$! PID[lavinmq]=$! # the reference script execs lavinmq
    URL[lavinmq]="amqp://guest:guest@127.0.0.1:$port/%2f"
    wait_port "$port" || { log "LavinMQ did not start: $work/lavin.$port.log"; exit 1; }
}
stop_broker() { # NAME (one started here)
    local j=${JOB[$1]:-}
    [ -n "$j" ] || return 0
    kill "$j" 2>/dev/null || true; wait "$j" 2>/dev/null || true
    JOB[$1]=""
}
external() { case $1 in rabbitmq) [ -n "${RABBIT_URL:-}" ] ;; lavinmq) [ -n "${LAVIN_URL:-}" ] ;; *) false ;; esac; }
restart_broker() { external "$1" || { stop_broker "$1"; "start_$1"; }; }
trap 'for b in $BROKERS; do stop_broker $b; done; rm -rf "$work"' EXIT
for b in $BROKERS; do "start_$b"; done

# --- scenarios: warren-perf arguments (the lapin tool adds --client lapin), lavinmqperf's.
declare -A PERF=(
  [a]="-x 1 -y 1 -s 16 -z $SECS"
  [b]="-x 1 -y 1 -s 1024 -c 100 -a 100 -P 1000 -z $SECS"
  [c]="-x 1 -y 1 -s 16384 -z $SECS"
  [e]="-x 1 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 -z $SECS"
  [f]="-x 4 -y 4 --queues 4 -s 256 -z $SECS"
  [mq]="backlog -x 1 -C $MEM_MESSAGES -s 16 -c 1000 -y 1 -a 100 -P 1000"
  [mqp]="backlog -x 1 -C $MEM_MESSAGES -s 16 -p -c 1000 -y 1 -a 100 -P 1000"
  [mi]="idle-queues --queues $IDLE_QUEUES --inflight 100"
  [mi-lavinmq]="idle-queues --queues $LAVIN_IDLE_QUEUES --inflight 100"
  [mc]="consumers -y $CONSUMERS --inflight 100"
  [ms]="slow-consumer -x 1 -y 1 -s 256 -c 1000 --consume-rate 100 -P 10 -z $SLOW_SECS --warmup 15"
  [i]="connections -n $CONNS --channels 1 --concurrency 200 -z 3"
  [d]="-x 1 -y 10 --queues 10 -e perf-fanout -t fanout -k '' -s 256 -z $SECS"
  [e8]="-x 8 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 -z $SECS"
  [g]="-x 1 -y 1 -e perf-topic -t topic -k a.b.c --bindings 1000 -s 256 -z $SECS"
  [h]="backlog -x 1 -C $BACKLOG -s 256 -c 1000 -y 1 -a 100 -P 1000"
  [j]="-x 1 -y 1 -s 1024 -r 5000 -c 100 -a 100 -P 1000 -z $SECS"
  [qq]="-x 1 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 --queue-args '{\"x-queue-type\":\"quorum\"}' -z $SECS"
  [qq8]="-x 8 -y 1 -s 1024 -p -c 100 -a 100 -P 1000 --queue-args '{\"x-queue-type\":\"quorum\"}' -z $SECS"
  [qc]="queue-churn -x 1 --inflight 10 -z $SECS"
  [bc]="bind-churn -x 1 --inflight 10 -z $SECS"
  [mo]="many-objects -x 1 -y 1 -s 16 --idle-queues $IDLE_QUEUES --idle-connections $CONNS -z $SECS"
  [mo-lavinmq]="many-objects -x 1 -y 1 -s 16 --idle-queues $LAVIN_IDLE_QUEUES --idle-connections $CONNS -z $SECS"
)
# lavinmqperf has no --queues: f is 4 publishers and 4 consumers on one queue there.
declare -A LAVIN=(
  [a]="-x 1 -y 1 -s 16"
  [b]="-x 1 -y 1 -s 1024 -c 100 -a 100 -P 1000"
  [c]="-x 1 -y 1 -s 16384"
  [e]="-x 1 -y 1 -s 1024 -p -c 100 -a 100 -P 1000"
  [f]="-x 4 -y 4 -s 256"
)
# Rows of the memory and "other" tables: the JSON fields each scenario reports.
declare -A FIGS=(
  [mq]="rss_per_message_bytes:B/message"
  [mqp]="rss_per_message_bytes:B/message"
  [mi]="rss_per_queue_bytes:B/queue"
  [mc]="rss_per_consumer_bytes:B/consumer"
  [ms]="rss_growth_kib:KiB rss_slope_kib_per_s:KiB/s_after_warm-up publish_rate:msg/s_published"
  [i]="rss_per_connection_bytes:B/connection open_rate:connections/s"
  [h]="drain_rate:msg/s_drained rss_backlog_kib:KiB_RSS_with_backlog publish_rate:msg/s_published"
  [j]="latency_us.p99:µs_p99_latency received_rate:msg/s"
  [qc]="rate:queues/s"
  [bc]="rate:bindings/s"
  [mo]="base.cpu_us_per_msg:µs/msg_alone loaded.cpu_us_per_msg:µs/msg_beside_idle_objects cpu_ratio:CPU_per_msg_ratio base.received_rate:msg/s_alone loaded.received_rate:msg/s_beside_idle_objects"
)
declare -A LABEL=(
  [a]="a. 16 B" [b]="b. 1 KiB, confirms, acks" [c]="c. 16 KiB" [e]="e. persistent 1 KiB, confirms, acks"
  [f]="f. 4 pub / 4 cons, 256 B" [mq]="$MEM_MESSAGES queued 16 B messages, transient" [mqp]="$MEM_MESSAGES queued 16 B messages, persistent"
  [mi]="$IDLE_QUEUES idle queues (LavinMQ: $LAVIN_IDLE_QUEUES)" [mc]="$CONSUMERS consumers on one channel"
  [ms]="slow consumer (100 msg/s), publisher at full speed, 256 B, ${SLOW_SECS} s" [i]="$CONNS idle connections"
)
FRESH="$MEMORY h mo"

# --- one run: each prints a JSON line with at least received_rate and cpu_us_per_msg.
# json FIELD[.FIELD]: a number from the JSON line on stdin ("" when missing or null).
json() { python3 -c '
import json, sys
v = json.loads(sys.stdin.read())
for k in sys.argv[1].split("."): v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1"; }
run_perf() { # BROKER SCENARIO [extra flags]
    local out flags=${PERF[$2-$1]:-${PERF[$2]}} # a broker's own flags (PERF[SCENARIO-BROKER]) when given
    out=$(eval "timeout $((SECS + 3600)) \"$BIN/warren-perf\" --uri \"${URL[$1]}\" $flags ${3:-} --pid \"${PID[$1]}\" --json" 2>>"$work/tool.err" | tail -1) || true
    echo "$out"
}
# lavinmqperf has no broker CPU: it is read here around the tool's whole run (connection
# and declare included, a few ms), then its queue (durable, named per run) is deleted.
run_lavinmqperf() { # BROKER SCENARIO
    local q="lavinmqperf-$2-$RANDOM" t0 t1 out
    t0=$(cpu_us "${PID[$1]}")
    out=$(timeout $((SECS + 60)) "$LAVINMQPERF" throughput --uri="${URL[$1]}" ${LAVIN[$2]} -u "$q" -z "$SECS" -q -j 2>>"$work/tool.err" | tail -1) || true
    t1=$(cpu_us "${PID[$1]}")
    "$BIN/warren-perf" delete-queue --uri "${URL[$1]}" -u "$q" >/dev/null 2>&1 || log "$q not deleted"
    python3 -c '
import json, sys
try: j = json.loads(sys.argv[1])
except ValueError: sys.exit(0)
n = j["avg_consume_rate"] * j["elapsed_seconds"]
cpu = int(sys.argv[3]) - int(sys.argv[2])
print(json.dumps({"received_rate": round(j["avg_consume_rate"]), "consumed": round(n),
                  "cpu_us_per_msg": round(cpu / n, 2) if n else None}))' "$out" "$t0" "$t1"
}
cpu_us() { # PID: user + system CPU time in µs
    python3 -c 'import os, sys; f = open(f"/proc/{sys.argv[1]}/stat").read().rsplit(")", 1)[1].split()
print((int(f[11]) + int(f[12])) * 10**6 // os.sysconf("SC_CLK_TCK"))' "$1" 2>/dev/null || echo 0
}
run_tool() { # TOOL BROKER SCENARIO
    case $1 in
        warren-perf) run_perf "$2" "$3" ;;
        lapin) run_perf "$2" "$3" "--client lapin" ;;
        lavinmqperf) run_lavinmqperf "$2" "$3" ;;
    esac
}

# --- the runs: one results line per figure, TABLE<TAB>ROW<TAB>UNIT<TAB>BROKER<TAB>VALUE.
results=$work/results.tsv
: >"$results"
record() { # TABLE ROW UNIT BROKER JSON FIELD
    local v; v=$(echo "$5" | json "$6" 2>/dev/null || true)
    [ -n "$v" ] && printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$v" >>"$results"
    return 0
}
rotate() { # N WORDS...: the words rotated left by N
    local n=$1; shift; local a=("$@"); local k=$((n % ${#a[@]}))
    echo "${a[@]:k}" "${a[@]:0:k}"
}
for s in $SCENARIOS; do
    [ -n "${PERF[$s]:-}" ] || { log "unknown scenario $s"; continue; }
    tools=warren-perf; has "$THREE" "$s" && tools=$TOOLS
    runs=$RUNS; has "$MEMORY" "$s" && runs=$MEM_RUNS
    for n in $(seq "$runs"); do
        if has "$FRESH" "$s"; then
            log "$s run $n: restarting the brokers"
            for b in $BROKERS; do restart_broker "$b"; done
        fi
        for t in $tools; do
            # Alternate the order of brokers from run to run (and tool to tool).
            for b in $(rotate $((n - 1)) $BROKERS); do
                [ "$t" != lavinmqperf ] || [ -n "${LAVIN[$s]:-}" ] || continue
                : >"$work/tool.err"
                out=$(run_tool "$t" "$b" "$s")
                log "$s $t $b run $n: ${out:-FAILED: $(tail -3 "$work/tool.err")}"
                [ -n "$out" ] || continue
                if has "$THREE" "$s"; then
                    record throughput "${LABEL[$s]}|$t" msg/s "$b" "$out" received_rate
                    record cpu "${LABEL[$s]}|$t" µs/msg "$b" "$out" cpu_us_per_msg
                elif has "$MEMORY" "$s"; then
                    for fu in ${FIGS[$s]}; do
                        tbl=memory; [ "${fu%%:*}" = "${FIGS[$s]%%:*}" ] || tbl=other
                        row="${LABEL[$s]}|RSS growth"; [ $tbl = memory ] || row="${LABEL[$s]}|${fu%%:*}"
                        record $tbl "$row" "${fu#*:}" "$b" "$out" "${fu%%:*}"
                    done
                else
                    for fu in ${FIGS[$s]:-received_rate:msg/s}; do
                        record other "$s: ${PERF[$s]% -z *}|${fu%%:*}" "${fu#*:}" "$b" "$out" "${fu%%:*}"
                    done
                fi
            done
        done
    done
done
python3 benches/compare_report.py "$results" "$BROKERS" "$RUNS" "$SECS" "$MEM_RUNS"
