#!/usr/bin/env python3
"""Wire probe (documentation / debugging aid, not part of the pass/fail suite).

Sends hand-built raw HTTP POSTs to a running server.py and prints status,
content-type and body for each, so the proxy author can see exactly how the
SDK server reacts to good, missing and mismatched routing headers, legacy
`initialize` under each era header, unsupported versions, `server/discover`,
and a `subscriptions/listen` stream.

Usage: python probe_wire.py URL      (e.g. http://127.0.0.1:PORT/mcp)
"""

from __future__ import annotations

import json
import sys
import threading
import time

import httpx2 as httpx

PV = "io.modelcontextprotocol/protocolVersion"
CI = "io.modelcontextprotocol/clientInfo"
CC = "io.modelcontextprotocol/clientCapabilities"


def meta(version: str = "2026-07-28") -> dict:
    return {PV: version, CI: {"name": "probe", "version": "0"}, CC: {}}


BASE = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def post(client: httpx.Client, url: str, title: str, body: dict, headers: dict) -> None:
    print(f"=== {title}")
    print(f"  > headers: {json.dumps({k: v for k, v in headers.items() if k.lower().startswith('mcp')})}")
    print(f"  > body: {json.dumps(body)}")
    r = client.post(url, json=body, headers={**BASE, **headers})
    print(f"  < {r.status_code} {r.headers.get('content-type')} session={r.headers.get('mcp-session-id')}")
    print(f"  < {r.text.strip()[:600]}")


def modern_call(name: str, args: dict, **over: str) -> tuple[dict, dict]:
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": args, "_meta": meta()}}
    h = {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": name}
    h.update(over)
    return body, {k: v for k, v in h.items() if v != ""}


def main() -> None:
    url = sys.argv[1]
    with httpx.Client(timeout=10) as c:
        b, h = modern_call("route_to", {"region": "eu", "payload": "p"}, **{"mcp-param-region": "eu"})
        post(c, url, "modern tools/call, all headers correct", b, h)
        b, h = modern_call("route_to", {"region": "eu", "payload": "p"})
        post(c, url, "modern tools/call, Mcp-Param-Region missing", b, h)
        b, h = modern_call("route_to", {"region": "eu", "payload": "p"}, **{"mcp-param-region": "us"})
        post(c, url, "modern tools/call, Mcp-Param-Region mismatched", b, h)
        b, h = modern_call("echo", {"text": "hi"}, **{"mcp-name": ""})
        post(c, url, "modern tools/call, Mcp-Name missing", b, h)
        b, h = modern_call("echo", {"text": "hi"}, **{"mcp-name": "add"})
        post(c, url, "modern tools/call, Mcp-Name mismatched", b, h)
        b, h = modern_call("echo", {"text": "hi"}, **{"mcp-method": ""})
        post(c, url, "modern tools/call, Mcp-Method missing", b, h)
        b, h = modern_call("echo", {"text": "hi"}, **{"mcp-protocol-version": ""})
        post(c, url, "modern tools/call body, MCP-Protocol-Version header missing (-> legacy path)", b, h)
        b, h = modern_call("echo", {"text": "hé"}, **{"mcp-name": "=?base64?ZWNobw==?="})
        post(c, url, "modern tools/call, Mcp-Name base64-sentinel encoded", b, h)
        b = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}
        post(c, url, "modern headers but no _meta envelope", b,
             {"mcp-protocol-version": "2026-07-28", "mcp-method": "tools/call", "mcp-name": "echo"})
        b = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta("2099-01-01")}}
        post(c, url, "unsupported version 2099-01-01 (header+_meta)", b,
             {"mcp-protocol-version": "2099-01-01", "mcp-method": "tools/list"})
        b = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta()}}
        post(c, url, "server/discover", b, {"mcp-protocol-version": "2026-07-28", "mcp-method": "server/discover"})
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "probe", "version": "0"}}}
        post(c, url, "legacy initialize with modern header", init, {"mcp-protocol-version": "2026-07-28", "mcp-method": "initialize"})
        post(c, url, "legacy initialize without any MCP header", init, {})
        b = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta()}}
        post(c, url, "server/discover without MCP-Protocol-Version header (-> legacy path)", b, {})
        b, h = modern_call("echo", {"text": "hi"})
        b["params"]["_meta"][PV] = "2025-11-25"
        post(c, url, "modern headers, _meta protocolVersion 2025-11-25 (header/body disagree)", b, h)
        b, h = modern_call("echo", {"text": "hi"})
        print("=== modern tools/call with Accept: application/json only (server in SSE mode)")
        r = c.post(url, json=b, headers={**h, "accept": "application/json", "content-type": "application/json"})
        print(f"  < {r.status_code} {r.headers.get('content-type')} {r.text.strip()[:200]!r}")
        b, h = modern_call("slow_count", {"steps": 2})
        b["params"]["_meta"]["progressToken"] = "tok-1"
        b["params"]["_meta"]["io.modelcontextprotocol/logLevel"] = "info"
        post(c, url, "modern tools/call slow_count with progressToken + logLevel (SSE response)", b, h)
        b = {"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"_meta": meta()}}
        post(c, url, "modern ping (removed at 2026-07-28)", b, {"mcp-protocol-version": "2026-07-28", "mcp-method": "ping"})
        b = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        post(c, url, "legacy tools/list with unknown Mcp-Session-Id", b,
             {"mcp-protocol-version": "2025-11-25", "mcp-session-id": "deadbeef"})
        b = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        post(c, url, "notification POST with modern header", b, {"mcp-protocol-version": "2026-07-28"})

    # subscriptions/listen: read the SSE stream raw, trigger an event from another thread.
    print("=== subscriptions/listen (raw SSE stream; poke is called 0.5 s after the stream opens)")
    body = {"jsonrpc": "2.0", "id": "L1", "method": "subscriptions/listen", "params": {
        "notifications": {"toolsListChanged": True, "resourceSubscriptions": ["config://app"]}, "_meta": meta()}}
    h = {**BASE, "mcp-protocol-version": "2026-07-28", "mcp-method": "subscriptions/listen"}
    print(f"  > body: {json.dumps(body)}")

    def poke() -> None:
        time.sleep(0.5)
        b, hh = modern_call("poke", {})
        httpx.post(url, json=b, headers={**BASE, **hh}, timeout=10)

    threading.Thread(target=poke, daemon=True).start()
    deadline = time.monotonic() + 3
    with httpx.Client(timeout=10) as c, c.stream("POST", url, json=body, headers=h) as r:
        print(f"  < {r.status_code} {r.headers.get('content-type')}")
        for line in r.iter_lines():
            if line:
                print(f"  < {line}")
            if line.startswith("data:") and "resources/updated" in line or time.monotonic() > deadline:
                break
    print("  (client closed the stream: that is how a 2026-07-28 client ends a listen)")


if __name__ == "__main__":
    main()
