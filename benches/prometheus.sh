#!/usr/bin/env bash
# The Prometheus endpoint's cost, measured on a running release broker (see
# docs/BENCHMARKS.md, "Prometheus"):
#   1. QUEUES (default 10 000) queues are declared, then GET /metrics/per-object and
#      GET /metrics are timed (median of 5);
#   2. scenario a (1 publisher, 1 consumer, 16 B, no confirms, no-ack) with and without a
#      scraper fetching /metrics/per-object every 5 seconds (Prometheus' usual interval
#      is 15 s; 5 s is RabbitMQ's recommended minimum), alternated run by run, with the
#      queues still declared;
#   3. the queues are deleted.
#
#   benches/prometheus.sh AMQP_URI PROMETHEUS_URL PID
#   e.g. benches/prometheus.sh amqp://guest:guest@127.0.0.1:5672/%2f http://127.0.0.1:15692 $(pidof warren)
# RUNS (default 5), SECONDS_PER_RUN (default 10), QUEUES (10000). SCRAPE_ONLY=1 times the
# scrapes only (step 1 and 3; e.g. against RabbitMQ, whose PID is then not needed).
# Needs python3 with pika (PYTHON, default interop/.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/lib.sh
uri=$1; prom=$2; pid=${3:-}
RUNS=${RUNS:-5}
SECS=${SECONDS_PER_RUN:-10}
QUEUES=${QUEUES:-10000}
PY=${PYTHON:-interop/.venv/bin/python}
PERF=${CARGO_TARGET_DIR:-target}/release/warren-perf

queues() {
    "$PY" - "$uri" "$QUEUES" "$1" <<'PY'
import sys, pika
uri, n, what = sys.argv[1], int(sys.argv[2]), sys.argv[3]
c = pika.BlockingConnection(pika.URLParameters(uri)); ch = c.channel()
for i in range(n):
    if what == "declare":
        ch.queue_declare(f"prom-bench-{i}")
    else:
        ch.queue_delete(f"prom-bench-{i}")
c.close()
PY
}

queues declare
trap 'queues delete' EXIT
"$PY" - "$prom" "$QUEUES" <<'PY'
import sys, time, statistics, urllib.request
prom, n = sys.argv[1], int(sys.argv[2])
for path in ["/metrics/per-object", "/metrics"]:
    times = []
    for _ in range(5):
        t = time.perf_counter(); body = urllib.request.urlopen(prom + path).read(); times.append(time.perf_counter() - t)
    print(f"GET {path} with {n} queues: {statistics.median(times) * 1000:.1f} ms (median of 5, {len(body)} bytes)")
PY
[ -n "${SCRAPE_ONLY:-}" ] && exit 0

[ -x "$PERF" ] || cargo build --release --quiet --bin warren-perf
declare -a PLAIN SCRAPED
for n in $(seq "$RUNS"); do
    read -r rate us < <(run_a)
    echo "run $n without scraper: $rate msg/s, $us µs broker CPU/msg" >&2
    PLAIN+=("$rate")
    # One scraper on a kept-alive connection, as Prometheus scrapes.
    "$PY" -c '
import http.client, sys, time, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
while True:
    c.request("GET", "/metrics/per-object"); c.getresponse().read()
    time.sleep(5)' "$prom" &
    scraper=$!
    read -r rate us < <(run_a)
    kill "$scraper"; wait "$scraper" 2>/dev/null || true
    echo "run $n scraping /metrics/per-object every 5 s: $rate msg/s, $us µs broker CPU/msg" >&2
    SCRAPED+=("$rate")
done
echo "scenario a with $QUEUES queues declared, median of $RUNS: without scraper $(median "${PLAIN[@]}") msg/s; scraping /metrics/per-object every 5 s $(median "${SCRAPED[@]}") msg/s"
