#!/usr/bin/env python3
"""benches/compare.sh's tables: medians of its results file, one markdown table per measure.

    compare_report.py RESULTS.tsv "warren rabbitmq lavinmq" RUNS SECONDS MEM_RUNS

Each results line is TABLE, ROW ("label|sub-row"), UNIT, BROKER, VALUE (tab-separated), one
per run; rows keep the order of their first line. A missing broker or run shows as "–".
"""
import statistics
import sys

NAMES = {"warren": "Warren", "rabbitmq": "RabbitMQ", "lavinmq": "LavinMQ"}
TITLES = {
    "throughput": "Throughput, msg/s consumed (median of {runs} runs of {secs} s)",
    "cpu": "Broker CPU per consumed message, µs (user + system over the measured window)",
    "memory": "Broker memory per object, bytes of RSS, and under a slow consumer (median of {mem_runs} runs)",
    "other": "Other scenarios (warren-perf; median of {runs} runs)",
}
FIRST = {"throughput": "load tool", "cpu": "load tool", "memory": "figure", "other": "figure"}


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{round(v):,}".replace(",", " ")
    return f"{v:.3g}"


def ratio(w, other):
    if w is None or not other:
        return "–"
    r = w / other
    return f"{r:.2f}x" if r < 10 else f"{r:.0f}x"


def main():
    path, brokers, runs, secs, mem_runs = sys.argv[1:6]
    brokers = brokers.split()
    tables = {}  # table -> {row: (unit, {broker: [values]})}
    for line in open(path, encoding="utf-8"):
        table, row, unit, broker, value = line.rstrip("\n").split("\t")
        rows = tables.setdefault(table, {})
        _, values = rows.setdefault(row, (unit, {}))
        values.setdefault(broker, []).append(float(value))
    others = [b for b in ("rabbitmq", "lavinmq") if b in brokers]
    for table in ("throughput", "cpu", "memory", "other"):
        if table not in tables:
            continue
        print(f"\n### {TITLES[table].format(runs=runs, secs=secs, mem_runs=mem_runs)}\n")
        head = ["scenario", FIRST[table]] + [NAMES[b] for b in brokers]
        head += [f"W/{NAMES[b][0]}" for b in others if "warren" in brokers] + ["unit"]
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        last = None
        for row, (unit, values) in tables[table].items():
            label, sub = row.split("|", 1)
            med = {b: statistics.median(values[b]) if b in values else None for b in brokers}
            cells = [label if label != last else "", sub]
            cells += [fmt(med[b]) for b in brokers]
            if "warren" in brokers:
                cells += [ratio(med["warren"], med[b]) for b in others]
            cells.append(unit.replace("_", " "))
            print("| " + " | ".join(cells) + " |")
            last = label


if __name__ == "__main__":
    main()
