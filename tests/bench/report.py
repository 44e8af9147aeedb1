"""Markdown tables from the JSON files tests/bench/run.sh writes."""

import json
import os
import sys

d, profile = sys.argv[1], sys.argv[2]


def load(name):
    path = f"{d}/{name}"
    return json.load(open(path)) if os.path.exists(path) else None


calls = load("calls.json")
bulk = load("calls-bulk.json")
idle = load("rss-idle.json")
loaded = load("rss-bulk.json")
alerts = load("alerts.json")
before, after = load("load-before.json") or {}, load("load-after.json") or {}
servers = list(calls)
print(f"kubemedic build profile: {profile}\n")
print(
    f"Load average (1/5/15 min) on {before.get('cpus', '?')} CPUs: before the run {before.get('before', '?')}, "
    f"after it {after.get('after', '?')}.\n"
)


def cell_text(cell):
    if "error" in cell:
        return f"error: {cell['error'][:80]}"
    err = f" ({cell['errors']} errors)" if cell["errors"] else ""
    return f"{cell['rps']:.0f}, {cell['p50_ms']:.1f}/{cell['p99_ms']:.1f}{err}"


print("| operation | concurrency | " + " | ".join(f"{s} calls/s, p50/p99 ms" for s in servers) + " |")
print("|---|---|" + "---|" * len(servers))
for key in next(iter(calls.values()))["cells"]:
    op, c = key.split("@")
    print(f"| {op} | {c} | " + " | ".join(cell_text(calls[s]["cells"][key]) for s in servers) + " |")
print()
print("| RSS (MiB) | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
print("| idle | " + " | ".join(f"{idle[s]:.1f}" for s in servers) + " |")
print(f"| {loaded['pods']} pods exist, after listing them | " + " | ".join(f"{loaded[s]:.1f}" for s in servers) + " |")
print()
print(f"| {loaded['pods']}-pod namespace, p50 of 3 | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
for op, what in (("list", "one list call (kubemedic: first page of 100)"), ("list_all", "every pod (kubemedic: pages of 500)")):
    row = []
    for s in servers:
        cell = bulk[s]["cells"].get(f"{op}@1")
        if cell is None:
            row.append("not measured")
        elif "error" in cell:
            row.append(f"error: {cell['error'][:80]}")
        else:
            size = f", {cell['bytes'] / 1024:.0f} KiB" if op == "list" else ""
            row.append(f"{cell['p50_ms']:.0f} ms{size}")
    print(f"| {what} | " + " | ".join(row) + " |")
print()
print("| alert to proposal, built-in runner | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
if alerts and alerts.get("n"):
    fails = f", {len(alerts['failures'])} without a proposal" if alerts["failures"] else ""
    km = (
        f"p50 {alerts['p50_ms']:.0f} ms, p99 {alerts['p99_ms']:.0f} ms, max {alerts['max_ms']:.0f} ms "
        f"({alerts['n']} incidents{fails}; polled every {alerts['poll_ms']:.0f} ms)"
    )
elif alerts:
    km = "no proposal: " + "; ".join(alerts["failures"])[:200]
else:
    km = "not measured"
print("| webhook POST → proposal listed by MCP `list_proposals` | " + " | ".join(
    km if s == "kubemedic" else "not measured" if s.startswith("kubemedic") else "no equivalent (no alert intake, no diagnosis)"
    for s in servers) + " |")
