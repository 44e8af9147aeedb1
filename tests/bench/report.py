"""Markdown table from the JSON files tests/bench/run.sh writes."""

import json
import sys

d, profile = sys.argv[1], sys.argv[2]
calls = json.load(open(f"{d}/calls.json"))
bulk = json.load(open(f"{d}/calls-bulk.json"))
idle = json.load(open(f"{d}/rss-idle.json"))
loaded = json.load(open(f"{d}/rss-bulk.json"))
servers = list(calls)
print(f"kubemedic build profile: {profile}\n")
print("| operation | concurrency | " + " | ".join(f"{s} calls/s, p50/p99 ms" for s in servers) + " |")
print("|---|---|" + "---|" * len(servers))
cells = next(iter(calls.values()))["cells"]
for key in cells:
    op, c = key.split("@")
    row = []
    for s in servers:
        cell = calls[s]["cells"][key]
        if "error" in cell:
            row.append(f"error: {cell['error'][:80]}")
        else:
            err = f" ({cell['errors']} errors)" if cell["errors"] else ""
            row.append(f"{cell['rps']:.0f}, {cell['p50_ms']:.1f}/{cell['p99_ms']:.1f}{err}")
    print(f"| {op} | {c} | " + " | ".join(row) + " |")
print()
print(f"| RSS (MiB) | " + " | ".join(servers) + " |")
print("|---|" + "---|" * len(servers))
print("| idle | " + " | ".join(f"{idle[s]:.1f}" for s in servers) + " |")
print(f"| {loaded['pods']} pods exist, after listing them | " + " | ".join(f"{loaded[s]:.1f}" for s in servers) + " |")
lat = []
for s in servers:
    cell = bulk[s]["cells"]["list@1"]
    lat.append(f"error: {cell['error'][:80]}" if "error" in cell else f"{cell['p50_ms']:.0f} ms")
print(f"| list pods in the {loaded['pods']}-pod namespace (p50) | " + " | ".join(lat) + " |")
