"""MCP tool-call load generator for tests/bench/run.sh.

Measures, for each server and each operation (list, get, events, logs), throughput
and p50/p99 latency of `tools/call` over streamable HTTP at concurrency 1 and 16,
plus process RSS. Bounded: each cell stops after --calls calls or --seconds seconds.
Only talks to 127.0.0.1. Prints a Markdown table and writes JSON to --out.
"""

import argparse
import asyncio
import json
import statistics
import sys
import time

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def is_error(result) -> bool:
    """`isError` in mcp 1.x, `is_error` in 2.x."""
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


def calls_for(server: str, ns: str, pod: str) -> dict:
    """The equivalent tool call of each server for each operation.

    `list` is one call: kubemedic answers with its first page (100 items by default), the peers
    with every pod. `list_all` gets every pod: kubemedic pages through with `limit: 500` and
    `continue` (one measured sample = all its pages), the peers make their one call.
    """
    if server.startswith("kubemedic"):
        return {
            "list": ("list_resources", {"kind": "Pod", "namespace": ns}),
            "list_all": ("list_resources", {"kind": "Pod", "namespace": ns, "limit": 500}),
            "get": ("get_resource", {"kind": "Pod", "namespace": ns, "name": pod}),
            "events": ("events", {"namespace": ns}),
            "logs": ("pod_logs", {"namespace": ns, "name": pod, "tail": 100}),
        }
    if server == "kubernetes-mcp-server":
        return {
            "list": ("pods_list_in_namespace", {"namespace": ns}),
            "list_all": ("pods_list_in_namespace", {"namespace": ns}),
            "get": ("pods_get", {"namespace": ns, "name": pod}),
            "events": ("events_list", {"namespace": ns}),
            "logs": ("pods_log", {"namespace": ns, "name": pod, "tail": 100}),
        }
    if server == "mcp-server-kubernetes":
        return {
            "list": ("kubectl_get", {"resourceType": "pods", "namespace": ns, "output": "json"}),
            "list_all": ("kubectl_get", {"resourceType": "pods", "namespace": ns, "output": "json"}),
            "get": ("kubectl_get", {"resourceType": "pods", "namespace": ns, "name": pod, "output": "json"}),
            "events": ("kubectl_get", {"resourceType": "events", "namespace": ns, "output": "json"}),
            "logs": ("kubectl_logs", {"resourceType": "pod", "namespace": ns, "name": pod, "tail": 100}),
        }
    raise ValueError(server)


class Worker:
    def __init__(self, url: str, token: str | None):
        self.url = url
        self.token = token
        self.stack = None
        self.session = None

    async def __aenter__(self):
        from contextlib import AsyncExitStack

        self.stack = AsyncExitStack()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        client = await self.stack.enter_async_context(create_mcp_http_client(headers=headers))
        streams = await self.stack.enter_async_context(streamable_http_client(self.url, http_client=client))
        self.session = await self.stack.enter_async_context(ClientSession(streams[0], streams[1]))
        await self.session.initialize()
        return self

    async def __aexit__(self, *exc):
        await self.stack.aclose()


def structured(result) -> dict:
    sc = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    return sc if isinstance(sc, dict) else {}


async def call(session, tool, args):
    """One sample: a tool call, or every page of a kubemedic listing that has a `limit`."""
    res = await session.call_tool(tool, args)
    if tool != "list_resources" or "limit" not in args:
        return res
    while not is_error(res) and structured(res).get("continue"):
        res = await session.call_tool(tool, {**args, "continue": structured(res)["continue"]})
    return res


async def run_cell(url, token, tool, args, concurrency, max_calls, max_seconds):
    workers = []
    try:
        for _ in range(concurrency):
            workers.append(await Worker(url, token).__aenter__())
        return await measure(workers, tool, args, max_calls, max_seconds)
    finally:
        for w in reversed(workers):
            try:
                await w.__aexit__(None, None, None)
            except Exception:  # noqa: BLE001 - closing errors do not change the figures
                pass


async def measure(workers, tool, args, max_calls, max_seconds):
    # One warm-up call per session (connection, caches); not measured.
    first = await call(workers[0].session, tool, args)
    text = "".join(getattr(c, "text", "") for c in first.content)
    sample = text[:300]
    if is_error(first):
        return {"error": f"{tool} failed: {sample}"}
    latencies, errors = [], 0
    budget = {"left": max_calls}
    deadline = time.monotonic() + max_seconds

    async def loop(w):
        nonlocal errors
        while budget["left"] > 0 and time.monotonic() < deadline:
            budget["left"] -= 1
            t0 = time.perf_counter()
            res = await call(w.session, tool, args)
            latencies.append(time.perf_counter() - t0)
            if is_error(res):
                errors += 1

    start = time.perf_counter()
    await asyncio.gather(*(loop(w) for w in workers))
    wall = time.perf_counter() - start
    latencies.sort()
    q = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000  # noqa: E731
    return {
        "calls": len(latencies),
        "errors": errors,
        "rps": len(latencies) / wall,
        "p50_ms": q(0.50),
        "p99_ms": q(0.99),
        "mean_ms": statistics.fmean(latencies) * 1000,
        "bytes": len(text),
    }


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", action="append", required=True, help="name=url=pid[=token]")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--pod", required=True)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--ops", default="list,get,events,logs")
    ap.add_argument("--concurrency", default="1,16")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    results = {}
    for spec in a.server:
        parts = spec.split("=", 3)
        name, url, pid = parts[0], parts[1], int(parts[2])
        token = parts[3] if len(parts) > 3 else None
        calls = calls_for(name, a.namespace, a.pod)
        res = {"rss_before_mib": rss_mib(pid), "cells": {}}
        for op in a.ops.split(","):
            tool, args = calls[op]
            for c in (int(x) for x in a.concurrency.split(",")):
                try:
                    cell = await run_cell(url, token, tool, args, c, a.calls, a.seconds)
                except Exception as e:  # noqa: BLE001 - reported in the table
                    cell = {"error": f"{type(e).__name__}: {e}"}
                res["cells"][f"{op}@{c}"] = cell
                print(f"{name} {op} c={c}: {cell}", file=sys.stderr, flush=True)
        res["rss_after_mib"] = rss_mib(pid)
        results[name] = res
    with open(a.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    asyncio.run(main())
