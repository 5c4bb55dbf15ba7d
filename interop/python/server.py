#!/usr/bin/env python3
"""Interop test server: a Streamable HTTP MCP server built on the `mcp` 2.x SDK.

Serves BOTH protocol eras on the same endpoint, at the same time (the SDK's
`StreamableHTTPSessionManager` routes each POST on its `MCP-Protocol-Version`
header):

* header absent or a handshake-era version (2024-11-05 .. 2025-11-25)
  -> legacy Streamable HTTP: `initialize` handshake, `Mcp-Session-Id`
     (stateful by default; `--stateless` for the stateless legacy variant);
* header `2026-07-28` (or any unknown value)
  -> modern single-exchange POST path: no handshake, no session id,
     `_meta` envelope + `Mcp-Method` / `Mcp-Name` / `Mcp-Param-*` validation,
     `server/discover`, `subscriptions/listen`.

Usage:
    python server.py [--port N] [--stateless] [--json] [--sse] [--log-headers FILE]

`--port 0` (the default) binds a free port on 127.0.0.1. Either way, the FIRST
line on stdout is exactly `PORT <n>`, printed once the socket is listening;
the endpoint is then http://127.0.0.1:<n>/mcp . `--sse` serves the deprecated
2024-11-05 HTTP+SSE transport instead, at http://127.0.0.1:<n>/sse (legacy era
only). `--log-headers FILE` appends one JSON line per HTTP request (method,
headers, body) to FILE, for wire debugging, and one more line
`{"method": "GET", "path": ..., "ended": true}` when a GET event stream ends.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
from typing import Annotated, Any

import uvicorn
from pydantic import Field

from pydantic import BaseModel

from mcp.server import MCPServer
from mcp.server.mcpserver import Context, Elicit, Resolve

mcp = MCPServer("clerk-interop-server", version="1.0.0", instructions="Interop test server for clerk-mcp-server.")


@mcp.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


@mcp.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@mcp.tool()
def route_to(
    region: Annotated[str, Field(json_schema_extra={"x-mcp-header": "Region"})],
    payload: str,
    ctx: Context,
) -> dict[str, Any]:
    """Tool whose `region` argument is mirrored into the `Mcp-Param-Region` HTTP header (2026-07-28).

    Returns what the server saw, so a client can assert on the HTTP layer.
    On the modern path the SDK already rejects (HTTP 400, -32020) a request
    whose Mcp-Param-Region is missing or disagrees with `region`.
    """
    headers = ctx.headers or {}
    raw_params = ctx.request_context.params or {}
    meta = raw_params.get("_meta") if isinstance(raw_params.get("_meta"), dict) else {}
    return {
        "metaKeys": sorted(meta),
        "metaClientInfo": meta.get("io.modelcontextprotocol/clientInfo"),
        "region": region,
        "payload": payload,
        "protocolVersion": ctx.protocol_version,
        "mcpMethodHeader": headers.get("mcp-method"),
        "mcpNameHeader": headers.get("mcp-name"),
        "mcpParamRegionHeader": headers.get("mcp-param-region"),
        "protocolVersionHeader": headers.get("mcp-protocol-version"),
        "sessionIdHeader": headers.get("mcp-session-id"),
    }


@mcp.tool()
async def slow_count(steps: int, ctx: Context) -> str:
    """Send `steps` progress notifications and one info log message, then return."""
    await ctx.info(f"slow_count starting with {steps} steps")
    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}/{steps}")
        await asyncio.sleep(0.05)
    return f"counted {steps}"


@mcp.tool()
async def poke(ctx: Context) -> str:
    """Publish a tools/list_changed and a resources/updated(config://app) event (for subscriptions/listen)."""
    await ctx.notify_tools_changed()
    await ctx.notify_resource_updated("config://app")
    return "poked"


class Person(BaseModel):
    name: str


def ask_name() -> Elicit[Person]:
    """Resolver: ask the client for a name. On 2026-07-28 this is one MRTR round."""
    return Elicit("What is your name?", Person)


@mcp.tool()
def greet(person: Annotated[Person, Resolve(ask_name)]) -> str:
    """Greet a person whose name is elicited from the client."""
    return f"Hello, {person.name}!"


@mcp.resource("config://app", mime_type="application/json")
def app_config() -> str:
    """A static JSON resource."""
    return json.dumps({"name": "clerk-interop", "answer": 42})


@mcp.resource("greeting://{name}")
def greeting(name: str) -> str:
    """A templated resource."""
    return f"Hello, {name}!"


@mcp.prompt()
def review(code: str) -> str:
    """A one-message prompt."""
    return f"Please review this code:\n\n{code}"


async def _read_body(receive: Any) -> bytes:
    """The whole request body of an ASGI HTTP request."""
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replaying(body: bytes, receive: Any) -> Any:
    """An ASGI `receive` that hands the already-read body to the app first."""
    replayed = False

    async def replay() -> Any:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _ModernOnly:
    """ASGI middleware that makes the endpoint modern-only (2026-07-28).

    The SDK serves both eras on one endpoint and offers no switch to refuse the legacy
    handshake, so this refuses it in front of the SDK: a POST whose JSON-RPC method is
    `initialize` gets HTTP 400 with UnsupportedProtocolVersion (-32022), naming the
    supported version, as a 2026-07-28-only server answers.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            request = json.loads(body)
        except ValueError:
            request = None
        if isinstance(request, dict) and request.get("method") == "initialize":
            requested = (request.get("params") or {}).get("protocolVersion")
            answer = json.dumps(
                {
                    "jsonrpc": "2.0",
                    "id": request.get("id"),
                    "error": {
                        "code": -32022,
                        "message": "Unsupported protocol version",
                        "data": {"supported": ["2026-07-28"], "requested": requested},
                    },
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": answer})
            return
        await self.app(scope, _replaying(body, receive), send)


class _HeaderLogger:
    """ASGI middleware appending one JSON line per HTTP request (method, path, headers, body) to a file."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        status: list[int] = []
        record = {
            "method": scope["method"],
            "path": scope["path"],
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "body": body.decode("utf-8", "replace"),
        }
        async def watch(message: Any) -> None:
            # One record per request: the SDK's HTTP+SSE endpoint sends a second (ignored)
            # response start after its stream ends.
            if message["type"] == "http.response.start" and not status:
                status.append(message["status"])
                record["status"] = message["status"]
                record["response_content_type"] = next(
                    (v.decode("latin-1") for k, v in message.get("headers", []) if k == b"content-type"), None
                )
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            await send(message)

        await self.app(scope, _replaying(body, receive), watch)
        if scope["method"] == "GET" and (record.get("response_content_type") or "").startswith("text/event-stream"):
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps({"method": "GET", "path": scope["path"], "ended": True}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--stateless", action="store_true", help="stateless legacy Streamable HTTP (no session id)")
    parser.add_argument("--json", action="store_true", help="JSON responses instead of SSE where the SDK allows")
    parser.add_argument("--log-headers", metavar="FILE", help="append one JSON line per HTTP request to FILE")
    parser.add_argument("--modern-only", action="store_true", help="refuse the legacy initialize handshake (-32022)")
    parser.add_argument("--sse", action="store_true", help="serve the 2024-11-05 HTTP+SSE transport at /sse instead")
    args = parser.parse_args()

    app: Any
    if args.sse:
        app = mcp.sse_app(host="127.0.0.1")
    else:
        app = mcp.streamable_http_app(
            json_response=args.json, stateless_http=args.stateless, host="127.0.0.1", session_idle_timeout=300
        )
    if args.modern_only:
        app = _ModernOnly(app)
    if args.log_headers:
        app = _HeaderLogger(app, args.log_headers)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(128)
    sock.set_inheritable(True)
    port = sock.getsockname()[1]

    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)

    async def serve() -> None:
        # The socket already listens, so announcing the port before serve() starts is safe:
        # connections queue in the backlog until uvicorn accepts them.
        print(f"PORT {port}", flush=True)
        await server.serve(sockets=[sock])

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
