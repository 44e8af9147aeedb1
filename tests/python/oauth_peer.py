"""The Python MCP SDK's own OAuth client against kubemedic, offline.

Starts a local OAuth authorization server stand-in on 127.0.0.1 (RFC 8414 metadata, a JWKS, and
a token endpoint for the client_credentials grant that signs RS256 JWTs), then waits for the
kubemedic daemon at --mcp (started by the Rust test once this issuer answers) and connects with
`ClientCredentialsOAuthProvider`: the SDK gets a 401, follows kubemedic's
`WWW-Authenticate: resource_metadata=...` to the protected-resource metadata (RFC 9728), finds the
issuer there, reads its metadata, gets a token and retries. Prints one JSON verdict line.
"""

import argparse
import asyncio
import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import ClientSession
from mcp.client.auth import TokenStorage
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthToken


def b64url(n: int) -> str:
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Issuer:
    def __init__(self, port: int, audience: str, client_id: str, client_secret: str, groups: list[str]):
        self.url = f"http://127.0.0.1:{port}"
        self.audience, self.client_id, self.client_secret, self.groups = audience, client_id, client_secret, groups
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.token_requests: list[dict] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def reply(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
                    self.reply(200, issuer.metadata())
                elif self.path == "/jwks":
                    pub = issuer.key.public_key().public_numbers()
                    self.reply(200, {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
                                               "n": b64url(pub.n), "e": b64url(pub.e)}]})
                else:
                    self.reply(404, {"error": "not_found"})

            def do_POST(self):
                if self.path != "/token":
                    return self.reply(404, {"error": "not_found"})
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                basic = self.headers.get("Authorization", "")
                client = ""
                if basic.startswith("Basic "):
                    client = base64.b64decode(basic[6:]).decode()
                issuer.token_requests.append({"grant_type": form.get("grant_type"), "resource": form.get("resource")})
                if client != f"{issuer.client_id}:{issuer.client_secret}" or form.get("grant_type") != "client_credentials":
                    return self.reply(401, {"error": "invalid_client"})
                now = int(time.time())
                claims = {"iss": issuer.url, "aud": issuer.audience, "sub": issuer.client_id,
                          "groups": issuer.groups, "iat": now, "exp": now + 300}
                token = jwt.encode(claims, issuer.key, algorithm="RS256", headers={"kid": "k1"})
                self.reply(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def metadata(self) -> dict:
        return {
            "issuer": self.url,
            # Required by RFC 8414 (and the SDK's model) although this stand-in grants no codes.
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }


class MemoryStorage(TokenStorage):
    def __init__(self):
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


async def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    async with httpx2.AsyncClient(timeout=2) as http:
        while time.monotonic() < deadline:
            try:
                await http.get(url)
                return
            except httpx2.HTTPError:
                await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not answer in {seconds}s")


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--issuer-port", type=int, required=True)
    p.add_argument("--mcp", required=True, help="kubemedic's /mcp URL")
    p.add_argument("--audience", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--groups", default="sre")
    args = p.parse_args()
    issuer = Issuer(args.issuer_port, args.audience, args.client_id, args.client_secret, args.groups.split(","))
    print(json.dumps({"issuer": issuer.url}), flush=True)
    await wait_for(args.mcp.rsplit("/mcp", 1)[0] + "/healthz", 120)

    verdict: dict = {"issuer": issuer.url}
    # First without credentials: the 401 names the metadata, which names this issuer.
    async with httpx2.AsyncClient(timeout=10) as http:
        r = await http.post(args.mcp, json={})
        verdict["unauthenticated_status"] = r.status_code
        verdict["www_authenticate"] = r.headers.get("www-authenticate", "")
    provider = ClientCredentialsOAuthProvider(
        server_url=args.mcp,
        storage=MemoryStorage(),
        client_id=args.client_id,
        client_secret=args.client_secret,
        issuer=issuer.url,
    )
    async with httpx2.AsyncClient(auth=provider, timeout=60) as http:
        async with streamable_http_client(args.mcp, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = await session.list_tools()
                verdict["tools"] = sorted(t.name for t in tools.tools)
    verdict["token_requests"] = issuer.token_requests
    print(json.dumps(verdict), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
