"""Alert-to-proposal latency of kubemedic's built-in runner, for tests/bench/run.sh.

For each workload (a Deployment whose pods cannot be scheduled, from
tests/scenarios/unschedulable-requests.yaml), one at a time: POST one
Alertmanager webhook (`KubeDeploymentReplicasMismatch` naming the Deployment)
to kubemedic's receiver, then poll MCP `list_proposals` until a proposal for
that Deployment is listed. The latency is from just before the POST to the
poll that first lists it, so it includes intake, rule matching, the incident
queue, the built-in diagnosis (its tool calls against the apiserver), the
policy check, the server-side dry-run, storing the proposal and one MCP read.
Polls are --poll-ms apart, which bounds the resolution.

Only talks to 127.0.0.1. Writes JSON to --out.
"""

import argparse
import asyncio
import datetime
import json
import sys
import time
import urllib.request

from contextlib import AsyncExitStack

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def is_error(result) -> bool:
    """`isError` in mcp 1.x, `is_error` in 2.x."""
    return bool(getattr(result, "is_error", getattr(result, "isError", False)))


class Worker:
    """One MCP session over streamable HTTP (the polls are few: the Python client is fine here)."""

    def __init__(self, url: str, token: str | None):
        self.url = url
        self.token = token
        self.stack = None
        self.session = None

    async def __aenter__(self):
        self.stack = AsyncExitStack()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        client = await self.stack.enter_async_context(create_mcp_http_client(headers=headers))
        streams = await self.stack.enter_async_context(streamable_http_client(self.url, http_client=client))
        self.session = await self.stack.enter_async_context(ClientSession(streams[0], streams[1]))
        await self.session.initialize()
        return self

    async def __aexit__(self, *exc):
        await self.stack.aclose()


def webhook(namespace: str, deployment: str) -> bytes:
    now = datetime.datetime.now(datetime.timezone.utc)
    alert = {
        "status": "firing",
        "labels": {
            "alertname": "KubeDeploymentReplicasMismatch",
            "namespace": namespace,
            "deployment": deployment,
            "severity": "warning",
        },
        "annotations": {"summary": f"Deployment {namespace}/{deployment} has not matched the expected replicas"},
        "startsAt": (now - datetime.timedelta(minutes=15)).isoformat().replace("+00:00", "Z"),
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1/graph",
        "fingerprint": f"bench-{deployment}",
    }
    body = {
        "version": "4",
        "status": "firing",
        "receiver": "kubemedic",
        "groupKey": f"{{}}:{{alertname=\"KubeDeploymentReplicasMismatch\", deployment=\"{deployment}\"}}",
        "truncatedAlerts": 0,
        "groupLabels": {"alertname": "KubeDeploymentReplicasMismatch"},
        "commonLabels": alert["labels"],
        "commonAnnotations": alert["annotations"],
        "externalURL": "http://127.0.0.1:9093",
        "alerts": [alert],
    }
    return json.dumps(body).encode()


def post(url: str, token: str, body: bytes) -> int:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def proposals(result) -> list:
    sc = getattr(result, "structured_content", None) or getattr(result, "structuredContent", None)
    if sc is None:
        sc = json.loads("".join(getattr(c, "text", "") for c in result.content))
    return sc.get("proposals", [])


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts-url", required=True)
    ap.add_argument("--alerts-token", required=True)
    ap.add_argument("--mcp", required=True, help="url=token")
    ap.add_argument("--namespace", required=True)
    ap.add_argument("--workloads", required=True, help="comma-separated Deployment names")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--poll-ms", type=float, default=10.0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    url, token = a.mcp.split("=", 1)
    samples, failures = [], []
    w = await Worker(url, token).__aenter__()
    try:
        for name in a.workloads.split(","):
            body = webhook(a.namespace, name)
            t0 = time.perf_counter()
            status = await asyncio.to_thread(post, a.alerts_url, a.alerts_token, body)
            if status // 100 != 2:
                failures.append(f"{name}: webhook answered {status}")
                continue
            found = None
            while time.perf_counter() - t0 < a.timeout:
                res = await w.session.call_tool("list_proposals", {"limit": 200})
                if is_error(res):
                    raise RuntimeError(f"list_proposals failed: {res.content}")
                found = next(
                    (p for p in proposals(res) if p["target"]["name"] == name and p["target"]["namespace"] == a.namespace),
                    None,
                )
                if found:
                    break
                await asyncio.sleep(a.poll_ms / 1000)
            elapsed = time.perf_counter() - t0
            if found is None:
                failures.append(f"{name}: no proposal within {a.timeout:.0f}s")
            else:
                samples.append(elapsed * 1000)
            print(f"alert->proposal {name}: {elapsed * 1000:.0f} ms ({'ok' if found else 'none'})", file=sys.stderr)
    finally:
        await w.__aexit__(None, None, None)
    out = {"samples_ms": samples, "failures": failures, "poll_ms": a.poll_ms}
    if samples:
        s = sorted(samples)
        q = lambda p: s[min(len(s) - 1, int(p * len(s)))]  # noqa: E731
        out.update({"n": len(s), "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": s[-1], "min_ms": s[0]})
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    if failures:
        print("alert bench failures: " + "; ".join(failures), file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
