#!/usr/bin/env python3
"""TEST AID ONLY -- a minimal stdio -> Streamable HTTP MCP proxy in Python.

It exists so the interop suite (server.py + client.py + run.sh) can be
validated without the real Rust binary (clerk-mcp-server). It is NOT the
product and is deliberately small; it mirrors what the real proxy has to do:

* reads newline-delimited JSON-RPC on stdin, writes server messages to stdout;
* modern era (a request whose params._meta carries
  io.modelcontextprotocol/protocolVersion): one self-contained POST per
  request with MCP-Protocol-Version (from _meta), Mcp-Method, Mcp-Name
  (tools/call & prompts/get: params.name; resources/read: params.uri) and
  Mcp-Param-<token> for every tools/call argument whose property carries
  `x-mcp-header` in the tool's inputSchema (learned from tools/list results
  passing through). Values that are not plain printable ASCII are sent as
  `=?base64?<b64>?=`. A client `notifications/cancelled` aborts the
  matching in-flight POST (that is the 2026-07-28 cancellation signal);
  other client notifications are dropped;
* legacy era: POST without a version header for `initialize`, then remember
  `Mcp-Session-Id` and the negotiated protocolVersion and send both on every
  later POST; notifications and client responses are POSTed too; DELETE the
  session at EOF;
* responses may be application/json or text/event-stream; every JSON-RPC
  message in either is written to stdout. HTTP errors with a JSON-RPC body
  are forwarded as-is, others are turned into a JSON-RPC error.

Usage: python standin_proxy.py [--allow-http] URL
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import httpx2 as httpx

from mcp.shared.inbound import encode_header_value, find_invalid_x_mcp_header, mcp_param_headers, x_mcp_header_map

PV_KEY = "io.modelcontextprotocol/protocolVersion"
NAME_KEYS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


class Proxy:
    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, read=None))
        self.session_id: str | None = None
        self.legacy_version: str | None = None
        self.header_maps: dict[str, dict[tuple[str, ...], str]] = {}
        self.inflight: dict[Any, asyncio.Task[None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def emit(self, msg: Any) -> None:
        sys.stdout.buffer.write(json.dumps(msg, separators=(",", ":")).encode() + b"\n")
        sys.stdout.buffer.flush()

    def log(self, text: str) -> None:
        print(f"[standin-proxy] {text}", file=sys.stderr, flush=True)

    def spawn(self, coro: Any, key: Any = None) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        if key is not None:
            self.inflight[key] = task
            task.add_done_callback(lambda _t: self.inflight.pop(key, None))

    def observe(self, request: dict[str, Any] | None, msg: Any, response: httpx.Response) -> None:
        """Learn from server messages: session id, negotiated version, tool header maps."""
        if not isinstance(msg, dict) or request is None or msg.get("id") != request.get("id"):
            return
        result = msg.get("result")
        if not isinstance(result, dict):
            return
        if request.get("method") == "initialize":
            self.session_id = response.headers.get("mcp-session-id")
            self.legacy_version = result.get("protocolVersion")
        elif request.get("method") == "tools/list":
            for tool in result.get("tools", []):
                schema = tool.get("inputSchema")
                if find_invalid_x_mcp_header(schema) is None:
                    self.header_maps[tool["name"]] = x_mcp_header_map(schema)

    def headers_for(self, msg: dict[str, Any]) -> dict[str, str]:
        headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        meta = params.get("_meta") if isinstance(params.get("_meta"), dict) else {}
        version = meta.get(PV_KEY)
        method = msg.get("method")
        if isinstance(version, str) and "id" in msg:
            headers["mcp-protocol-version"] = version
            headers["mcp-method"] = method
            key = NAME_KEYS.get(method)
            if key and isinstance(params.get(key), str):
                headers["mcp-name"] = encode_header_value(params[key])
            if method == "tools/call" and isinstance(params.get("name"), str):
                header_map = self.header_maps.get(params["name"], {})
                headers.update(mcp_param_headers(header_map, params.get("arguments") or {}))
        else:
            if self.session_id:
                headers["mcp-session-id"] = self.session_id
            if self.legacy_version and method != "initialize":
                headers["mcp-protocol-version"] = self.legacy_version
        return headers

    async def post(self, msg: dict[str, Any]) -> None:
        request = msg if "method" in msg and "id" in msg else None
        try:
            async with self.http.stream("POST", self.url, json=msg, headers=self.headers_for(msg)) as r:
                ctype = r.headers.get("content-type", "").split(";")[0].strip().lower()
                if r.status_code == 202:
                    return
                if ctype == "text/event-stream":
                    data: list[str] = []
                    async for line in r.aiter_lines():
                        if line.startswith("data:"):
                            data.append(line[5:].lstrip(" "))
                        elif line == "" and data:
                            out = json.loads("\n".join(data))
                            data = []
                            self.observe(request, out, r)
                            self.emit(out)
                    return
                body = await r.aread()
                try:
                    out = json.loads(body)
                except ValueError:
                    out = None
                if isinstance(out, dict) and out.get("jsonrpc") == "2.0":
                    if request is not None and out.get("id") is None and "error" in out:
                        out["id"] = request["id"]  # e.g. legacy transport errors carry id null
                    self.observe(request, out, r)
                    self.emit(out)
                elif request is not None:
                    self.emit({"jsonrpc": "2.0", "id": request["id"], "error": {
                        "code": -32603, "message": f"HTTP {r.status_code}: {body[:200].decode('utf-8', 'replace')}"}})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # network failure: answer the request, never hang the client
            self.log(f"POST failed: {exc!r}")
            if request is not None:
                self.emit({"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32603, "message": str(exc)}})

    def handle(self, msg: Any) -> None:
        if not isinstance(msg, dict):
            return
        method = msg.get("method")
        if method is not None and "id" in msg:
            self.spawn(self.post(msg), key=msg["id"])
            return
        if method == "notifications/cancelled":
            rid = (msg.get("params") or {}).get("requestId")
            task = self.inflight.get(rid)
            if task is not None and self.session_id is None:
                task.cancel()  # modern era: closing the POST is the cancellation
                return
        if self.session_id is None and method is not None:
            return  # modern era: no client->server notifications on the wire
        self.spawn(self.post(msg))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=16 * 1024 * 1024)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip():
                try:
                    self.handle(json.loads(line))
                except ValueError:
                    self.log(f"dropping unparseable line: {line[:200]!r}")
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.session_id:
            try:
                await self.http.delete(self.url, headers={"mcp-session-id": self.session_id}, timeout=2)
            except Exception:
                pass
        await self.http.aclose()


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--allow-http"]
    if len(args) != 1:
        sys.exit("usage: standin_proxy.py [--allow-http] URL")
    asyncio.run(Proxy(args[0]).run())


if __name__ == "__main__":
    main()
