#!/usr/bin/env python3
"""A configured URL that redirects: FastMCP mounted in Starlette, where /mcp answers 307 -> /mcp/.

Usage: redirect_mount.py [--log-dir DIR] [--proxy-stderr FILE] BIN [ARGS...]

Starts fastmcp_mounted_server.py (FastMCP 4 `http_app(path="/")` inside a Starlette
`Mount("/mcp", ...)`) on a free port it binds itself, checks that a POST to `/mcp` really
gets a 307 to `/mcp/`, then drives `BIN ARGS... http://127.0.0.1:PORT/mcp` (no trailing
slash) with the `mcp` SDK's stdio client (`Client(mode="legacy")`: initialize, tools/list,
tools/call). The proxy must follow the same-origin 307 with the method and body kept, and
say so once on stderr, naming `http://127.0.0.1:PORT/mcp/` as the URL to put in the config.

Prints one PASS/FAIL line per check, then `redirect-mount: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import anyio

from mcp import Client, StdioServerParameters, stdio_client
from mcp.types import Implementation

HERE = Path(__file__).resolve().parent
NAME = "redirect-mount"
# The path given to the proxy: the mount point without its trailing slash.
MCP_PATH = "/mcp"
CHECK_TIMEOUT = 20.0
OVERALL_TIMEOUT = 90.0


def describe(exc: BaseException) -> str:
    """One line; unwraps (nested) exception groups down to their leaves."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions[:3])
    return f"{type(exc).__name__}: {exc}"


class Runner:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def ok(self, name: str, detail: str) -> None:
        self.passed += 1
        print(f"PASS [{NAME}] {name} ({detail})", flush=True)

    def fail(self, name: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL [{NAME}] {name}: {why}", flush=True)

    def sync_check(self, name: str, fn: Any) -> None:
        try:
            detail = fn()
        except Exception as exc:  # noqa: BLE001 - every failure is a FAIL line
            self.fail(name, describe(exc))
        else:
            self.ok(name, detail)

    async def check(self, name: str, fn: Any, timeout: float = CHECK_TIMEOUT) -> bool:
        try:
            with anyio.fail_after(timeout):
                detail = await fn()
        except BaseException as exc:  # noqa: BLE001
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.fail(name, describe(exc))
            return False
        self.ok(name, detail)
        return True


def start_server(log_dir: Path) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fastmcp_mounted_server.py"), "--port", "0",
         "--log", str(log_dir / "redirect-mount-requests.jsonl")],
        stdout=subprocess.PIPE,
        stderr=(log_dir / "redirect-mount-server.err").open("a"),
        text=True,
    )
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"fastmcp_mounted_server.py did not start: {line!r}")
    port = int(line.split()[1])
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("fastmcp_mounted_server.py does not accept connections")
            time.sleep(0.1)


def raw_redirect(port: int) -> str:
    """Without the proxy: a POST to the configured URL is answered 307 -> /mcp/."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "redirect-mount-probe", "version": "1"}}})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", MCP_PATH, body=body, headers={
            "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
        resp = conn.getresponse()
        resp.read()
        location = resp.getheader("Location") or ""
    finally:
        conn.close()
    target = urljoin(f"http://127.0.0.1:{port}{MCP_PATH}", location)
    assert resp.status == 307, f"HTTP {resp.status}, Location {location!r}"
    assert target == f"http://127.0.0.1:{port}/mcp/", f"Location {location!r}"
    return f"POST {MCP_PATH} -> 307, Location {location}"


async def drive(cmd: list[str], url: str, errlog: Any, r: Runner) -> None:
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], url], env=dict(os.environ))
    client = Client(
        stdio_client(params, errlog=errlog),
        mode="legacy",
        client_info=Implementation(name="clerk-interop-redirect", version="1.0.0"),
        read_timeout_seconds=CHECK_TIMEOUT,
        cache=None,
    )
    # Entered in this task, outside any per-check cancel scope (anyio scopes must nest): the
    # handshake is bounded by read_timeout_seconds and the overall timeout.
    try:
        await client.__aenter__()
    except Exception as exc:  # noqa: BLE001
        r.fail("initialize through the redirect", describe(exc))
        return
    c = client
    try:

        async def initialize() -> str:
            assert c.session.initialize_result is not None, "no initialize result"
            info = c.server_info
            assert info is not None and info.name == "fastmcp-mounted", f"server info {info!r}"
            assert c.session.initialize_result.capabilities.tools is not None, "no tools capability"
            return f"protocol {c.protocol_version}, server {info.name} {info.version}"

        await r.check("initialize through the redirect", initialize)

        async def list_tools() -> str:
            names = sorted(t.name for t in (await c.list_tools()).tools)
            assert {"echo", "add"} <= set(names), f"tools {names}"
            return f"tools {names}"

        await r.check("tools/list", list_tools)

        async def echo() -> str:
            res = await c.call_tool("echo", {"text": "hello, wörld ✓"})
            text = "".join(getattr(b, "text", "") for b in res.content)
            assert not res.is_error and text == "hello, wörld ✓", f"is_error={res.is_error} text={text!r}"
            return "unicode round-trip"

        await r.check("tools/call echo", echo)

        async def add() -> str:
            res = await c.call_tool("add", {"a": 2, "b": 40})
            text = "".join(getattr(b, "text", "") for b in res.content)
            assert not res.is_error and text == "42", f"is_error={res.is_error} text={text!r}"
            assert res.structured_content in (None, {"result": 42}), f"structured {res.structured_content!r}"
            return "2+40 = 42"

        await r.check("tools/call add", add)
    finally:
        try:
            await c.__aexit__(None, None, None)
        except Exception as exc:  # noqa: BLE001
            r.fail("shutdown", describe(exc))


def one_warning(stderr: Path, port: int) -> str:
    """Exactly one line about the redirect, a warning, naming /mcp/ as the URL for the config."""
    want = f"http://127.0.0.1:{port}/mcp/"
    lines = [l for l in stderr.read_text(encoding="utf-8", errors="replace").splitlines()
             if re.search(r"redirect", l, re.I)]
    assert len(lines) == 1, f"{len(lines)} lines about the redirect: {lines[:5]}"
    line = lines[0]
    assert re.search(r"\bWARN", line), f"not a warning: {line!r}"
    said = re.search(r"\bput\s+(\S+)\s+in\b[^.]*\bconfig", line, re.I)
    assert said and said.group(1) == want, f"does not name {want} for the config: {line!r}"
    return line.strip()


def server_saw(log: Path) -> str:
    """The server answered /mcp with 307 and the MCP traffic went to /mcp/."""
    reqs = [json.loads(l) for l in log.read_text().splitlines() if l.strip()]
    # The first entry is our own probe (raw_redirect); the proxy's requests follow it.
    proxy_reqs = reqs[1:]
    redirected = [q for q in proxy_reqs if q["path"] == MCP_PATH]
    served = [q for q in proxy_reqs if q["path"] == "/mcp/" and q["method"] == "POST" and q["status"] < 300]
    assert redirected and all(q["status"] == 307 for q in redirected), f"requests to {MCP_PATH}: {redirected}"
    assert len(served) >= 3, f"POSTs served at /mcp/: {served}"
    return f"{len(redirected)} request(s) to {MCP_PATH} got 307, {len(served)} POSTs served at /mcp/"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--log-dir", default=None)
    p.add_argument("--proxy-stderr", default=None)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="BIN [ARGS...]")
    args = p.parse_args()
    if not args.cmd:
        p.error("need BIN")
    log_dir = Path(args.log_dir or tempfile.mkdtemp(prefix="clerk-redirect-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    stderr_path = Path(args.proxy_stderr or log_dir / "proxy-stderr-redirect-mount.log")
    stderr_path.write_text("")
    (log_dir / "redirect-mount-requests.jsonl").write_text("")
    r = Runner()
    server = None
    try:
        server, port = start_server(log_dir)
        url = f"http://127.0.0.1:{port}{MCP_PATH}"
        print(f"# FastMCP mounted at /mcp; proxy URL {url}; logs: {log_dir}", flush=True)
        r.sync_check("the server redirects /mcp to /mcp/", lambda: raw_redirect(port))

        async def body() -> None:
            with open(stderr_path, "a", buffering=1) as errlog:
                with anyio.move_on_after(OVERALL_TIMEOUT) as scope:
                    await drive(args.cmd, url, errlog, r)
            if scope.cancelled_caught:
                r.fail("overall", f"over {OVERALL_TIMEOUT:.0f} s")

        anyio.run(body)
        time.sleep(0.2)  # the proxy has exited; let its last stderr lines land
        r.sync_check("one warning naming the URL to configure", lambda: one_warning(stderr_path, port))
        r.sync_check("the proxy followed the redirect", lambda: server_saw(log_dir / "redirect-mount-requests.jsonl"))
    except BaseException as exc:  # noqa: BLE001
        r.fail("crashed", describe(exc))
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(5)
            except subprocess.TimeoutExpired:
                server.kill()
    if r.failed and stderr_path.exists():
        print(f"# proxy stderr, last 15 lines ({stderr_path}):", flush=True)
        for line in stderr_path.read_text(errors="replace").splitlines()[-15:]:
            print(f"#   {line}", flush=True)
    print(f"{NAME}: {r.passed} passed, {r.failed} failed", flush=True)
    sys.stdout.flush()
    os._exit(0 if r.failed == 0 and r.passed > 0 else 1)


if __name__ == "__main__":
    main()
