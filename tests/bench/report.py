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


go_env = (load("go-env.json") or {}).get("go_env", "?")
print(f"kubernetes-mcp-server started with: {go_env}.\n")


def cell_text(cell):
    if "error" in cell:
        return f"error: {cell['error'][:80]}"
    err = f" ({cell['errors']} errors)" if cell["errors"] else ""
    return f"{cell['rps']:.0f}, {cell['p50_ms']:.1f}/{cell['p99_ms']:.1f}{err}"


def goal(km, go):
    """The issue's goal for a cell: throughput >= 1.5x and p99 <= 1x the Go server's."""
    if km is None or go is None or "error" in km or "error" in go:
        return "n/a"
    ratio = km["rps"] / go["rps"]
    p99 = km["p99_ms"] / go["p99_ms"]
    ok = ratio >= 1.5 and p99 <= 1.0 and not km["errors"]
    return f"{'met' if ok else 'NOT met'} ({ratio:.2f}x calls/s, {p99:.2f}x p99)"


go = "kubernetes-mcp-server" if "kubernetes-mcp-server" in servers else None
head = " | ".join(f"{s} calls/s, p50/p99 ms" for s in servers)
print(f"| operation | concurrency | {head} |" + (" goal (>= 1.5x calls/s, <= 1x p99) | load generator CPU |" if go else ""))
print("|---|---|" + "---|" * len(servers) + ("---|---|" if go else ""))
OPS = ["list", "list_all", "get", "events", "logs"]


def ordered(cells):
    """Cells in the order of the issue's table: operation, then concurrency."""
    return sorted(cells, key=lambda k: (OPS.index(k.split("@")[0]) if k.split("@")[0] in OPS else 99, int(k.split("@")[1])))


for key in ordered(next(iter(calls.values()))["cells"]):
    op, c = key.split("@")
    row = f"| {op} | {c} | " + " | ".join(cell_text(calls[s]["cells"][key]) for s in servers) + " |"
    if go:
        km_cell, go_cell = calls["kubemedic"]["cells"].get(key), calls[go]["cells"].get(key)
        share = [calls[s]["cells"][key].get("client_cpu_share") for s in ("kubemedic", go)]
        gen = " / ".join(f"{x * 100:.0f}%" if x is not None else "?" for x in share)
        row += f" {goal(km_cell, go_cell)} | {gen} |"
    print(row)
if go:
    print(
        "\nLoad generator CPU: the share of one core mcpbench used while measuring kubemedic / "
        "the Go server (one thread; 100% would mean it, not the server, set the pace).\n"
    )


def cpu_text(cell):
    if "error" in cell or "server_cpu_ms_per_call" not in cell:
        return "n/a"
    parts = [f"{cell['server_cpu_ms_per_call']:.2f}"]
    parts += [f"{v:.2f}" for v in cell.get("others_cpu_ms_per_call", {}).values()]
    return " / ".join(parts)


first = next(iter(calls.values()))["cells"]
others = next((list(c.get("others_cpu_ms_per_call", {})) for c in first.values() if "error" not in c), [])
print(f"CPU ms per call: server / {' / '.join(others)} (what one call costs the machine), and the size of one answer:\n")
print("| operation | concurrency | " + " | ".join(f"{s} CPU ms | {s} answer bytes" for s in servers) + " |")
print("|---|---|" + "---|---|" * len(servers))
for key in ordered(first):
    op, c = key.split("@")
    print(
        f"| {op} | {c} | "
        + " | ".join(f"{cpu_text(calls[s]['cells'][key])} | {calls[s]['cells'][key].get('bytes', 'n/a')}" for s in servers)
        + " |"
    )
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
