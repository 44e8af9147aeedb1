"""Follow kubemedic through a burst of incidents, for tests/bench/runner.sh.

`watch`: from the moment the burst starts (the caller passes its start time), poll
kubemedic's /metrics every --poll-ms and its RSS from /proc until --expect incidents have
been opened and as many diagnosis attempts have ended (or --timeout). Records when the
last incident was opened and when the last diagnosis ended, the deepest incident queue
seen, the largest RSS, and the deltas of the histograms over the burst:
kubemedic_diagnosis_duration_seconds (by outcome), kubemedic_incident_wait_seconds,
kubemedic_signal_handling_seconds and kubemedic_watch_delivery_seconds.

`check`: afterwards, list the incidents of each namespace through MCP `list_incidents`
and count them by status, with or without proposals, and per workload (one incident per
failing workload is the tracker's promise).

Quantiles from histograms are bucket upper bounds (the buckets are at most 1.67x apart).
Only talks to 127.0.0.1. Writes JSON to --out.
"""

import argparse
import asyncio
import json
import re
import sys
import time
import urllib.request
from collections import Counter

from alerts import Worker, is_error

LINE = re.compile(r'^(kubemedic_[a-z_]+)(\{[^}]*\})? ([0-9.eE+-]+|NaN|\+Inf)$')
HISTOGRAMS = (
    "kubemedic_diagnosis_duration_seconds",
    "kubemedic_incident_wait_seconds",
    "kubemedic_signal_handling_seconds",
    "kubemedic_watch_delivery_seconds",
)


def parse_metrics(text: str) -> dict:
    """`name{labels}` -> value, for the kubemedic_ samples of a Prometheus text page."""
    out = {}
    for line in text.splitlines():
        m = LINE.match(line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def labels(key: str) -> dict:
    inner = key.split("{", 1)[1].rstrip("}") if "{" in key else ""
    return dict(re.findall(r'([a-z_]+)="([^"]*)"', inner))


def delta(after: dict, before: dict) -> dict:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


def quantiles(d: dict, name: str, outcome_filter=None) -> dict:
    """Count and p50/p90/p99 upper bounds of histogram `name` in the delta `d` (all label sets summed,
    or those whose outcome passes `outcome_filter`)."""
    buckets, count = Counter(), 0.0
    for k, v in d.items():
        lb = labels(k)
        if outcome_filter and not outcome_filter(lb):
            continue
        if k.startswith(name + "_bucket{"):
            le = lb["le"]
            if le != "+Inf":
                buckets[float(le)] += v
        elif k.startswith(name + "_count"):
            count += v
    ordered = sorted(buckets.items())

    def q(p):
        for le, c in ordered:
            if count and c >= p * count - 1e-9:
                return le
        return None  # beyond the last bound

    return {"count": count, "p50_upper_s": q(0.5), "p90_upper_s": q(0.9), "p99_upper_s": q(0.99)}


def scrape(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return parse_metrics(r.read().decode())


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def total(d: dict, name: str, pred=lambda lb: True) -> float:
    return sum(v for k, v in d.items() if (k == name or k.startswith(name + "{")) and pred(labels(k)))


def watch(a) -> dict:
    url = f"http://127.0.0.1:{a.port}/metrics"
    before = json.load(open(a.before))
    start = a.start
    finished = lambda lb: lb.get("outcome") != "retry"  # noqa: E731
    t_opened = t_diagnosed = None
    max_depth, max_rss, samples = 0.0, 0.0, []
    while True:
        now = time.time()
        cur = scrape(url)
        d = delta(cur, before)
        opened = total(d, "kubemedic_incidents_total")
        done = total(d, "kubemedic_diagnosis_duration_seconds_count", finished)
        depth = cur.get("kubemedic_queue_depth", 0.0)
        rss = rss_mib(a.pid)
        max_depth, max_rss = max(max_depth, depth), max(max_rss, rss)
        samples.append({"t": round(now - start, 2), "opened": opened, "diagnosed": done, "queue": depth, "rss": round(rss, 1)})
        if t_opened is None and opened >= a.expect:
            t_opened = now - start
        if done >= a.expect and opened >= a.expect:
            t_diagnosed = now - start
            break
        if now - start > a.timeout:
            break
        time.sleep(a.poll_ms / 1000)
    time.sleep(2)  # a straggler opened after the count was reached would show here
    d = delta(scrape(url), before)
    outcomes = {labels(k)["outcome"]: v for k, v in d.items()
                if k.startswith("kubemedic_diagnosis_duration_seconds_count{")}
    return {
        "expect": a.expect,
        "incidents_opened": total(d, "kubemedic_incidents_total"),
        "seconds_to_all_opened": t_opened,
        "seconds_to_all_diagnosed": t_diagnosed,
        "timed_out": t_diagnosed is None,
        "outcomes": outcomes,
        "dropped": {labels(k).get("reason", ""): v for k, v in d.items()
                    if k.startswith("kubemedic_dropped_signals_total") and v},
        "signals": total(d, "kubemedic_signals_total"),
        "max_queue_depth": max_depth,
        "max_rss_mib": round(max_rss, 1),
        "diagnosis": quantiles(d, "kubemedic_diagnosis_duration_seconds", finished),
        "incident_wait": quantiles(d, "kubemedic_incident_wait_seconds"),
        "signal_handling": quantiles(d, "kubemedic_signal_handling_seconds"),
        "watch_delivery": quantiles(d, "kubemedic_watch_delivery_seconds"),
        "timeline": samples,
    }


async def check(a) -> dict:
    url, token = a.mcp.split("=", 1)
    by_status, with_proposals, per_workload, missing, per_ns = Counter(), 0, Counter(), [], {}
    async with Worker(url, token) as w:
        for ns in a.namespaces.split(","):
            res = await w.session.call_tool("list_incidents", {"namespace": ns, "limit": 200})
            if is_error(res):
                raise RuntimeError(f"list_incidents {ns} failed: {res.content}")
            sc = getattr(res, "structured_content", None) or getattr(res, "structuredContent", None)
            if sc is None:
                sc = json.loads("".join(getattr(c, "text", "") for c in res.content))
            per_ns[ns] = len(sc["incidents"])
            for i in sc["incidents"]:
                by_status[i["status"]] += 1
                with_proposals += bool(i.get("proposals"))
                per_workload[(ns, i["workload"]["kind"], i["workload"]["name"])] += 1
                if i["status"] != "diagnosed":
                    missing.append(f'{ns}/{i["workload"]["name"]}: {i["status"]} {i.get("summary") or ""}'[:200])
    return {
        "incidents": sum(by_status.values()),
        "per_namespace": per_ns,
        "by_status": dict(by_status),
        "with_proposals": with_proposals,
        "workloads": len(per_workload),
        "workloads_with_more_than_one_incident": sum(1 for c in per_workload.values() if c > 1),
        "not_diagnosed": missing[:20],
    }


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("snapshot", help="save /metrics as JSON (the 'before' of a burst)")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--out", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--pid", type=int, required=True)
    w.add_argument("--before", required=True)
    w.add_argument("--start", type=float, required=True, help="the burst's start, Unix seconds")
    w.add_argument("--expect", type=int, required=True)
    w.add_argument("--timeout", type=float, default=900)
    w.add_argument("--poll-ms", type=float, default=250)
    w.add_argument("--out", required=True)
    c = sub.add_parser("check")
    c.add_argument("--mcp", required=True, help="url=token")
    c.add_argument("--namespaces", required=True)
    c.add_argument("--expect", type=int, required=True, help="incidents expected in all")
    c.add_argument("--out", required=True)
    a = ap.parse_args()
    if a.cmd == "snapshot":
        out = scrape(f"http://127.0.0.1:{a.port}/metrics")
    elif a.cmd == "watch":
        out = watch(a)
    else:
        out = asyncio.run(check(a))
        if out["incidents"] != a.expect:
            print(f"runner.py check: listed {out['incidents']} incidents, expected {a.expect}", file=sys.stderr)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    if a.cmd != "snapshot":
        brief = {k: v for k, v in out.items() if k != "timeline"}
        print(json.dumps(brief), file=sys.stderr)


if __name__ == "__main__":
    main()
