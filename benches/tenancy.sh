#!/usr/bin/env bash
# Scenario a (1 publisher, 1 consumer, 16-byte messages, no confirms, no-ack) through the
# tenancy and TLS paths, side by side, configurations alternated run by run so that noise
# hits each alike; prints each run and the median per configuration, with the broker's
# CPU time per consumed message (user + system ticks of its process over the run).
#
#   benches/tenancy.sh CONFIG...      CONFIG is NAME=URI=PID, e.g.
#   benches/tenancy.sh "warren-guest=amqp://guest:guest@127.0.0.1:5680/%2f=$(pidof warren)" \
#                      "warren-tls=amqps://guest:guest@127.0.0.1:5681/%2f=$(pidof warren)"
# RUNS (default 3) and SECONDS_PER_RUN (default 10) set the repetitions and their length.
# docs/BENCHMARKS.md ("Tenancy and TLS") shows how the brokers were started.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECS=${SECONDS_PER_RUN:-10}
PERF=${CARGO_TARGET_DIR:-target}/release/warren-perf
[ -x "$PERF" ] || cargo build --release --quiet --bin warren-perf
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A RATES CPU
for n in $(seq "$RUNS"); do
    for cfg in "$@"; do
        name=${cfg%%=*}; rest=${cfg#*=}; uri=${rest%=*}; pid=${rest##*=}
        t0=$(ticks "$pid")
        out=$("$PERF" --uri "$uri" -x 1 -y 1 -s 16 -z "$SECS" --json | tail -1)
        t1=$(ticks "$pid")
        read -r rate us < <(python3 -c '
import json, os, sys
j = json.loads(sys.argv[1]); hz = os.sysconf("SC_CLK_TCK")
n = j.get("consumed") or j["received_rate"] * float(sys.argv[4])
print(round(j["received_rate"]), round((int(sys.argv[3]) - int(sys.argv[2])) / hz * 1e6 / max(n, 1), 2))' "$out" "$t0" "$t1" "$SECS")
        echo "run $n $name: $rate msg/s, $us µs broker CPU per message" >&2
        RATES[$name]+="$rate "; CPU[$name]+="$us "
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf '| configuration | msg/s (median of %s) | broker CPU µs/msg |\n|---|---|---|\n' "$RUNS"
for cfg in "$@"; do
    name=${cfg%%=*}
    printf '| %s | %s | %s |\n' "$name" "$(echo "${RATES[$name]}" | median)" "$(echo "${CPU[$name]}" | median)"
done
