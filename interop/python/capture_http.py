#!/usr/bin/env python3
"""Wire capture (documentation aid, not part of the pass/fail suite).

Runs the SDK's own Streamable HTTP client (no proxy involved) against a running
server.py and prints every HTTP request it sends (method, headers, body) and
the status / content-type of each response, for each era. This is the
reference for what a stdio->HTTP proxy should put on the wire.

Usage: python capture_http.py URL [legacy|auto|pinned ...]   (default: legacy auto)
"""

from __future__ import annotations

import json
import sys

import anyio
import httpx2 as httpx

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

SKIP = {"host", "accept-encoding", "connection", "user-agent", "content-length"}


async def on_request(request: httpx.Request) -> None:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in SKIP}
    body = request.content.decode("utf-8", "replace") if request.method == "POST" else ""
    print(f"> {request.method} {request.url.path}  {json.dumps(headers)}")
    if body:
        print(f"    {body}")


async def on_response(response: httpx.Response) -> None:
    extra = {k: v for k, v in response.headers.items() if k.lower() in ("mcp-session-id",)}
    print(f"< {response.status_code} {response.headers.get('content-type')} {json.dumps(extra) if extra else ''}")


async def session(url: str, mode: str) -> None:
    print(f"\n######## mode={mode}")
    async with httpx.AsyncClient(event_hooks={"request": [on_request], "response": [on_response]}) as hc:
        client = Client(
            streamable_http_client(url, http_client=hc),
            mode={"pinned": "2026-07-28"}.get(mode, mode),
            client_info=Implementation(name="capture", version="0"),
            log_level="info",
            cache=None,
        )
        async with client as c:
            await c.list_tools()
            await c.call_tool("route_to", {"region": "eu-west-1", "payload": "p"})

            async def on_progress(p: float, t: float | None, m: str | None) -> None:
                print(f"    (progress {p}/{t} {m})")

            await c.call_tool("slow_count", {"steps": 2}, progress_callback=on_progress)
            await c.read_resource("config://app")


async def main() -> None:
    url = sys.argv[1]
    for mode in sys.argv[2:] or ["legacy", "auto"]:
        await session(url, mode)


if __name__ == "__main__":
    anyio.run(main)
