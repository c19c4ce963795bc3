# Shared by benches/mgmt.sh and benches/prometheus.sh (sourced; needs $uri, $pid, $SECS
# and $PERF set): scenario a measured against a running broker, and a median.

# CPU ticks (user + system) of process $1.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# One run of scenario a (1 publisher, 1 consumer, 16 B, no confirms, no-ack) for $SECS
# seconds: prints the consumed rate and the broker's CPU microseconds per message.
run_a() {
    local t0 t1 out
    t0=$(ticks "$pid")
    out=$("$PERF" --uri "$uri" -x 1 -y 1 -s 16 -z "$SECS" --json | tail -1)
    t1=$(ticks "$pid")
    python3 -c '
import json, os, sys
j = json.loads(sys.argv[1]); hz = os.sysconf("SC_CLK_TCK")
n = j.get("consumed") or j["received_rate"] * float(sys.argv[4])
print(round(j["received_rate"]), round((int(sys.argv[3]) - int(sys.argv[2])) / hz * 1e6 / max(n, 1), 2))' "$out" "$t0" "$t1" "$SECS"
}

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
