"""The PyPI `mcp` client as a peer of kubemedic's MCP server, over stdio or streamable HTTP.

Driven by the Rust end-to-end test tests/e2e/tests/mcp_peers.rs, which starts the server on the
real control plane + nodesim, plants a Secret with a known value, and reads this script's JSON
verdict from stdout. Each check raises on failure (exit code 1, reason on stderr).

  python mcp_peer.py --stdio "kubemedic mcp --config C" --namespace NS --secret VALUE --checks reads
  python mcp_peer.py --http URL --token T --namespace NS --checks forbidden
  python mcp_peer.py --stdio ... --checks elicit --answer accept|decline
"""

import argparse
import asyncio
import json
import os
import shlex
import sys

import httpx2
from mcp import ClientSession, MCPError, StdioServerParameters
from mcp import types
from mcp.client.stdio import get_default_environment, stdio_client
from mcp.client.streamable_http import streamable_http_client

EXPECTED_TOOLS = {
    "list_resources", "get_resource", "describe_workload", "events", "pod_logs", "rollout_status",
    "rollout_history", "decode_secret", "cluster_health", "workload_graph", "list_incidents",
    "list_proposals", "get_proposal", "propose_patch", "rollout_restart", "rollout_undo", "scale",
    "delete_pod", "apply_proposal", "drift_check",
}
EXPECTED_PROMPTS = {
    "diagnose-workload", "summarize-cluster-health", "triage-alert", "validate-rollout", "log-triage",
    "drift-report",
}


def check(cond, message):
    if not cond:
        raise AssertionError(message)


def dump(result) -> str:
    return json.dumps(result.model_dump(mode="json"), sort_keys=True)


async def reads(session: ClientSession, args, verdict):
    tools = (await session.list_tools()).tools
    names = {t.name for t in tools}
    check(EXPECTED_TOOLS <= names, f"missing tools: {EXPECTED_TOOLS - names}")
    scale = next(t for t in tools if t.name == "scale")
    check(scale.annotations.destructive_hint is True, "scale must be destructive")
    check(next(t for t in tools if t.name == "events").annotations.read_only_hint is True, "events read-only")
    prompts = {p.name for p in (await session.list_prompts()).prompts}
    check(EXPECTED_PROMPTS <= prompts, f"missing prompts: {EXPECTED_PROMPTS - prompts}")
    resources = {r.uri for r in (await session.list_resources()).resources}
    check("kubemedic://namespaces" in resources, f"resources: {resources}")
    ns_text = dump(await session.read_resource("kubemedic://namespaces"))
    check(args.namespace in ns_text, f"namespace {args.namespace} not listed: {ns_text}")

    ns = args.namespace
    outputs = {}
    for name, arguments in [
        ("describe_workload", {"namespace": ns, "kind": "Deployment", "name": "leaky"}),
        ("events", {"namespace": ns, "kind": "Deployment", "name": "leaky", "include_related": True}),
        ("pod_logs", {"namespace": ns, "kind": "Deployment", "name": "leaky", "tail": 50}),
        ("pod_logs", {"namespace": ns, "kind": "Deployment", "name": "leaky", "previous": True}),
        ("get_resource", {"namespace": ns, "kind": "Deployment", "name": "leaky"}),
        ("get_resource", {"namespace": ns, "kind": "Secret", "name": "leaky-creds"}),
        ("decode_secret", {"namespace": ns, "workload_kind": "Deployment", "workload_name": "leaky"}),
        ("list_resources", {"namespace": ns, "kind": "Pod"}),
        ("cluster_health", {"namespace": ns}),
        ("workload_graph", {"namespace": ns}),
        ("rollout_status", {"namespace": ns, "kind": "Deployment", "name": "frontend"}),
        ("rollout_history", {"namespace": ns, "kind": "Deployment", "name": "frontend"}),
    ]:
        result = await session.call_tool(name, arguments)
        text = dump(result)
        check(not result.is_error, f"{name} failed: {text}")
        check(result.structured_content is not None, f"{name}: no structured content")
        check(args.secret not in text, f"{name} leaked the secret value")
        outputs[name] = result.structured_content
    logs = json.dumps(outputs["pod_logs"])
    check("[REDACTED]" in logs, f"pod_logs shows no redaction: {logs}")
    keys = outputs["decode_secret"]["secrets"][0]["keys"]
    check(any(k["key"] == "token" and k["fingerprint"].startswith("hmac-sha256:") for k in keys), f"keys: {keys}")
    prompt = await session.get_prompt("diagnose-workload", {"namespace": ns, "kind": "Deployment", "name": "leaky"})
    check("describe_workload" in dump(prompt), "prompt text names the tools")
    # Bad input is a clear error, not a crash.
    for arguments, needle in [
        ({"kind": "Widget"}, "unknown kind"),
        ({"kind": "Pod", "namespace": "Not_A_Name"}, "DNS-1123"),
    ]:
        try:
            result = await session.call_tool("list_resources", arguments)
            raise AssertionError(f"expected an error for {arguments}, got {dump(result)}")
        except MCPError as e:
            check(needle in str(e), f"{arguments}: {e}")
    verdict["tools"] = len(names)
    verdict["prompts"] = len(prompts)
    verdict["reads"] = sorted(outputs)


async def forbidden(session: ClientSession, args, verdict):
    try:
        result = await session.call_tool("scale", {"namespace": args.namespace, "kind": "Deployment", "name": "frontend", "replicas": 3})
        raise AssertionError(f"a viewer could call scale: {dump(result)}")
    except MCPError as e:
        check("needs the Operator role" in str(e), f"unclear error: {e}")
        verdict["forbidden"] = str(e)


async def elicit(session: ClientSession, args, verdict):
    result = await session.call_tool(
        "scale", {"namespace": args.namespace, "kind": "Deployment", "name": "frontend", "replicas": args.replicas}
    )
    check(not result.is_error, f"scale failed: {dump(result)}")
    verdict["proposal"] = result.structured_content["proposal"]
    verdict["message"] = result.structured_content["message"]
    verdict["asked"] = ASKED


ASKED = []


async def on_elicit(args):
    async def callback(context, params: types.ElicitRequestParams):
        ASKED.append(params.message)
        if args.answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action=args.answer)

    return callback


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--stdio")
    p.add_argument("--http")
    p.add_argument("--token")
    p.add_argument("--namespace", required=True)
    p.add_argument("--secret", default="")
    p.add_argument("--checks", required=True, choices=["reads", "forbidden", "elicit"])
    p.add_argument("--answer", default="accept", choices=["accept", "decline", "cancel"])
    p.add_argument("--replicas", type=int, default=2)
    args = p.parse_args()
    callback = await on_elicit(args)
    verdict = {"checks": args.checks}
    run = {"reads": reads, "forbidden": forbidden, "elicit": elicit}[args.checks]
    if args.stdio:
        parts = shlex.split(args.stdio)
        env = {**get_default_environment(), "RUST_LOG": os.environ.get("RUST_LOG", "info")}
        params = StdioServerParameters(command=parts[0], args=parts[1:], env=env)
        async with stdio_client(params) as (read, write):
            async with ClientSession(read, write, elicitation_callback=callback) as session:
                await session.initialize()
                await run(session, args, verdict)
    else:
        headers = {"Authorization": f"Bearer {args.token}"}
        async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
            async with streamable_http_client(args.http, http_client=http) as (read, write):
                async with ClientSession(read, write, elicitation_callback=callback) as session:
                    await session.initialize()
                    await run(session, args, verdict)
    print(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
