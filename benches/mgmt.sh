#!/usr/bin/env bash
# The management API's cost, measured on a running release broker (see docs/BENCHMARKS.md,
# "Management API"):
#   1. scenario a (1 publisher, 1 consumer, 16 B, no confirms, no-ack) with and without a
#      client polling GET /api/queues every second, alternated run by run;
#   2. GET /api/queues with 10 000 queues (whole list and first page), timed;
#   3. GET /api/connections with 10 000 connections open (first page), timed.
#
#   benches/mgmt.sh AMQP_URI MGMT_URL PID
#   e.g. benches/mgmt.sh amqp://guest:guest@127.0.0.1:5672/%2f http://127.0.0.1:15672 $(pidof warren)
# RUNS (default 5) and SECONDS_PER_RUN (default 10); QUEUES and CONNECTIONS (10000 each).
# Needs python3 with pika (the interop venv has it: interop/.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
uri=$1; mgmt=$2; pid=$3
RUNS=${RUNS:-5}
SECS=${SECONDS_PER_RUN:-10}
QUEUES=${QUEUES:-10000}
CONNECTIONS=${CONNECTIONS:-10000}
PY=${PYTHON:-interop/.venv/bin/python}
PERF=${CARGO_TARGET_DIR:-target}/release/warren-perf
[ -x "$PERF" ] || cargo build --release --quiet --bin warren-perf
auth=guest:guest


declare -a PLAIN POLLED
for n in $(seq "$RUNS"); do
    read -r rate us < <(run_a)
    echo "run $n without API client: $rate msg/s, $us µs broker CPU/msg" >&2
    PLAIN+=("$rate")
    # One client on a kept-alive connection (a dashboard), not a process per request.
    "$PY" -c '
import base64, http.client, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
h = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
while True:
    c.request("GET", "/api/queues", headers=h); c.getresponse().read()
    time.sleep(1)' "$mgmt" &
    poller=$!
    read -r rate us < <(run_a)
    kill "$poller"; wait "$poller" 2>/dev/null || true
    echo "run $n polling /api/queues every second: $rate msg/s, $us µs broker CPU/msg" >&2
    POLLED+=("$rate")
done
echo "scenario a, median of $RUNS: without API client $(median "${PLAIN[@]}") msg/s; polling /api/queues every second $(median "${POLLED[@]}") msg/s"

"$PY" - "$uri" "$mgmt" "$QUEUES" <<'PY'
import sys, time, pika, urllib.request, base64, statistics
uri, mgmt, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = pika.BlockingConnection(pika.URLParameters(uri)); ch = c.channel()
for i in range(n):
    ch.queue_declare(f"mgmt-bench-{i}", auto_delete=False)
auth = "Basic " + base64.b64encode(b"guest:guest").decode()
def timed(path):
    times = []
    for _ in range(5):
        req = urllib.request.Request(mgmt + path, headers={"Authorization": auth})
        t = time.perf_counter(); body = urllib.request.urlopen(req).read(); times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000, len(body)
for path in ["/api/queues", "/api/queues?page=1&page_size=100", "/api/queues?page=1&page_size=100&sort=messages&name=bench-99"]:
    ms, size = timed(path)
    print(f"GET {path} with {n} queues: {ms:.1f} ms (median of 5, {size} bytes)")
for i in range(n):
    ch.queue_delete(f"mgmt-bench-{i}")
c.close()
PY

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
"$PERF" connections --uri "$uri" -n "$CONNECTIONS" -z 30 --json >/tmp/mgmt-bench-conns.json &
perf=$!
"$PY" - "$mgmt" "$CONNECTIONS" <<'PY'
import sys, time, json, urllib.request, base64, statistics
mgmt, n = sys.argv[1], int(sys.argv[2])
auth = "Basic " + base64.b64encode(b"guest:guest").decode()
def get(path):
    req = urllib.request.Request(mgmt + path, headers={"Authorization": auth})
    t = time.perf_counter(); body = urllib.request.urlopen(req).read()
    return time.perf_counter() - t, json.loads(body)
deadline = time.time() + 60
while time.time() < deadline:
    _, o = get("/api/overview")
    if o["object_totals"]["connections"] >= n: break
    time.sleep(0.2)
print(f"{o['object_totals']['connections']} connections open")
for path in ["/api/connections?page=1&page_size=100", "/api/connections?page=50&page_size=100", "/api/connections"]:
    times = [get(path)[0] for _ in range(5)]
    print(f"GET {path} with {n} connections: {statistics.median(times)*1000:.1f} ms (median of 5)")
PY
kill "$perf" 2>/dev/null; wait "$perf" 2>/dev/null || true
