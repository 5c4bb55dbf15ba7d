#!/usr/bin/env python3
"""Interop client: drives a stdio->HTTP MCP proxy with the `mcp` 2.x SDK's stdio client.

Usage:
    python client.py --era legacy|modern --url URL [--modern-mode auto|pinned]
                     [--timeout 60] [--trace FILE] [--proxy-stderr FILE] BIN [ARGS...]

Spawns `BIN ARGS... URL` through the SDK's stdio client (newline-delimited
JSON-RPC on the child's stdin/stdout) and runs a series of checks against
server.py behind it:

* --era legacy: `Client(mode="legacy")` -> `initialize` handshake
  (protocolVersion 2025-11-25) + `notifications/initialized`, then plain
  JSON-RPC requests without `_meta` envelope.
* --era modern: no `initialize`. With --modern-mode auto (default) the SDK's
  `Client(mode="auto")` sends `server/discover` first and adopts 2026-07-28
  (the check fails if it fell back to `initialize`); with --modern-mode pinned
  `Client(mode="2026-07-28")` skips discovery entirely and the first message
  is an ordinary request. Either way every request carries
  `_meta["io.modelcontextprotocol/protocolVersion"] = "2026-07-28"`, clientInfo
  and clientCapabilities (the server echoes what it received, and checks assert it).

Prints one line per check (`PASS [era] name` / `FAIL [era] name: why`), then a
machine-readable line `RESULT era=<era> passed=<n> failed=<m>`. Exit status is
0 only if everything passed. The whole run is bounded by --timeout seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TextIO

import anyio
from mcp_types import CONNECTION_CLOSED
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcp import Client, StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import encode_header_value
from mcp.types import Implementation

HERE = Path(__file__).resolve().parent
MODERN = "2026-07-28"
CLIENT_INFO = Implementation(name="clerk-interop-client", version="1.0.0")
CHECK_TIMEOUT = 20.0
EXPECTED_TOOLS = {"echo", "add", "route_to", "slow_count", "poke"}


def describe(exc: BaseException) -> str:
    """Readable one-liner; unwraps (nested) exception groups down to their leaves."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions[:3]) + (" ..." if len(exc.exceptions) > 3 else "")
    if isinstance(exc, MCPError):
        return f"MCPError code={exc.code} message={exc.error.message!r} data={exc.error.data!r}"
    return f"{type(exc).__name__}: {exc}"


class Runner:
    def __init__(self, era: str) -> None:
        self.era = era
        self.passed = 0
        self.failed = 0
        self.timeouts = 0
        self.dead: str | None = None  # set once the connection is gone: later checks are skipped

    def ok(self, name: str, detail: str = "") -> None:
        self.passed += 1
        print(f"PASS [{self.era}] {name}" + (f" ({detail})" if detail else ""), flush=True)

    def fail(self, name: str, why: str) -> None:
        self.failed += 1
        print(f"FAIL [{self.era}] {name}: {why}", flush=True)

    async def check(self, name: str, fn: Callable[[], Awaitable[str | None]], timeout: float = CHECK_TIMEOUT) -> bool:
        if self.dead is not None:
            print(f"SKIP [{self.era}] {name} ({self.dead})", flush=True)
            return False
        t0 = time.monotonic()
        try:
            with anyio.fail_after(timeout):
                detail = await fn()
        except AssertionError as exc:
            self.fail(name, f"assertion: {exc}")
            return False
        except TimeoutError:
            self.fail(name, f"timed out after {timeout:.0f}s")
            self.timeouts += 1
            if self.timeouts >= 2:
                self.dead = "proxy unresponsive: two checks timed out"
            return False
        except Exception as exc:  # noqa: BLE001 - every failure becomes a FAIL line
            self.fail(name, describe(exc))
            if os.environ.get("INTEROP_DEBUG"):
                traceback.print_exc()
            if isinstance(exc, MCPError) and exc.code == CONNECTION_CLOSED:
                self.dead = "connection to the proxy closed"
            return False
        self.ok(name, (detail or "") + f"{'; ' if detail else ''}{(time.monotonic() - t0) * 1000:.0f} ms")
        return True


def text_of(result: Any) -> str:
    return "".join(getattr(block, "text", "") for block in result.content)


def proxy_transport(cmd: list[str], url: str, trace: str | None, errlog: TextIO) -> Any:
    argv = [*cmd, url]
    if trace:
        argv = [sys.executable, str(HERE / "stdio_tee.py"), trace, *argv]
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
    return stdio_client(params, errlog=errlog)


class Session:
    """One proxy process + one SDK Client, plus the notifications it received."""

    def __init__(self, era: str, modern_mode: str, cmd: list[str], url: str, trace: str | None, errlog: TextIO):
        self.logs: list[Any] = []
        mode = "legacy" if era == "legacy" else ("auto" if modern_mode == "auto" else MODERN)

        async def on_log(params: Any) -> None:
            self.logs.append(params)

        self.client = Client(
            proxy_transport(cmd, url, trace, errlog),
            mode=mode,
            client_info=CLIENT_INFO,
            read_timeout_seconds=CHECK_TIMEOUT,
            logging_callback=on_log,
            # 2026-07-28 log delivery is a per-request opt-in (_meta logLevel); no effect on legacy.
            log_level="debug",
            # Keep every call on the wire: the suite tests the proxy, not the SDK's response cache.
            cache=None,
        )


async def run_checks(args: argparse.Namespace, r: Runner, errlog: TextIO) -> None:
    era = args.era
    modern = era == "modern"
    s = Session(era, args.modern_mode, args.cmd, args.url, args.trace, errlog)
    c = s.client

    # Enter the client in this task, outside any per-check cancel scope (anyio scopes must nest):
    # the handshake itself is bounded by read_timeout_seconds and the overall --timeout.
    t0 = time.monotonic()
    try:
        await c.__aenter__()
    except Exception as exc:  # noqa: BLE001
        r.fail("connect", describe(exc))
        return
    connect_ms = (time.monotonic() - t0) * 1000

    async def connect() -> str:
        pv = c.protocol_version
        if modern:
            assert pv == MODERN, f"negotiated {pv!r}, expected {MODERN} (did the client fall back to initialize?)"
            assert c.session.initialize_result is None, "an initialize handshake happened"
            if args.modern_mode == "auto":
                assert c.session.discover_result is not None, "no server/discover result"
                assert MODERN in c.session.discover_result.supported_versions
            how = "server/discover" if args.modern_mode == "auto" else "pinned, no discover"
        else:
            assert pv in HANDSHAKE_PROTOCOL_VERSIONS, f"negotiated {pv!r}, expected a handshake-era version"
            assert c.session.initialize_result is not None
            how = "initialize"
        how += f" in {connect_ms:.0f} ms"
        if modern and args.modern_mode == "pinned":
            return f"{how}, protocol {pv}"
        info = c.server_info
        assert info is not None and info.name == "clerk-interop-server", f"server info {info!r}"
        return f"{how}, protocol {pv}, server {info.name} {info.version}"

    try:
        await r.check("connect", connect)

        async def list_tools() -> str:
            tools = {t.name: t for t in (await c.list_tools()).tools}
            missing = EXPECTED_TOOLS - set(tools)
            assert not missing, f"missing tools {sorted(missing)}; got {sorted(tools)}"
            region = tools["route_to"].input_schema["properties"]["region"]
            assert region.get("x-mcp-header") == "Region", f"route_to.region schema {region!r}"
            return f"{len(tools)} tools, route_to.region has x-mcp-header=Region"

        await r.check("tools/list", list_tools)

        async def echo() -> str:
            res = await c.call_tool("echo", {"text": "hello, wörld ✓"})
            assert not res.is_error, f"is_error: {text_of(res)}"
            assert text_of(res) == "hello, wörld ✓", f"got {text_of(res)!r}"
            return "unicode round-trip"

        await r.check("tools/call echo", echo)

        async def add() -> str:
            res = await c.call_tool("add", {"a": 2, "b": 40})
            assert not res.is_error, f"is_error: {text_of(res)}"
            assert res.structured_content == {"result": 42}, f"structured {res.structured_content!r}"
            assert text_of(res) == "42", f"text {text_of(res)!r}"
            return "2+40=42"

        await r.check("tools/call add", add)

        async def route(region: str) -> str:
            res = await c.call_tool("route_to", {"region": region, "payload": "p"})
            assert not res.is_error, f"is_error: {text_of(res)}"
            seen = res.structured_content or {}
            assert seen.get("region") == region, f"region {seen.get('region')!r}"
            if modern:
                assert seen.get("protocolVersion") == MODERN, f"server saw protocol {seen.get('protocolVersion')!r}"
                assert seen.get("protocolVersionHeader") == MODERN, f"MCP-Protocol-Version {seen!r}"
                assert seen.get("mcpMethodHeader") == "tools/call", f"Mcp-Method {seen.get('mcpMethodHeader')!r}"
                assert seen.get("mcpNameHeader") == "route_to", f"Mcp-Name {seen.get('mcpNameHeader')!r}"
                want = encode_header_value(region)
                assert seen.get("mcpParamRegionHeader") == want, (
                    f"Mcp-Param-Region {seen.get('mcpParamRegionHeader')!r}, expected {want!r}"
                )
                keys = seen.get("metaKeys") or []
                for key in ("io.modelcontextprotocol/protocolVersion", "io.modelcontextprotocol/clientCapabilities"):
                    assert key in keys, f"_meta keys seen by server: {keys}"
                ci = seen.get("metaClientInfo") or {}
                assert ci.get("name") == CLIENT_INFO.name, f"_meta clientInfo seen by server: {ci!r}"
                assert seen.get("sessionIdHeader") is None, "modern request carried Mcp-Session-Id"
                return f"server saw Mcp-Param-Region={want!r}, Mcp-Name=route_to, _meta envelope"
            assert seen.get("protocolVersion") in HANDSHAKE_PROTOCOL_VERSIONS, f"server saw {seen!r}"
            if args.expect_session:
                assert seen.get("sessionIdHeader"), "legacy request reached the server without Mcp-Session-Id"
            return f"server saw legacy protocol {seen.get('protocolVersion')}, session={bool(seen.get('sessionIdHeader'))}"

        await r.check("tools/call x-mcp-header tool (ascii)", lambda: route("eu-west-1"))
        await r.check("tools/call x-mcp-header tool (non-ascii -> base64 sentinel)", lambda: route("Zürich 東京"))

        async def progress() -> str:
            got: list[tuple[float, float | None, str | None]] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                got.append((p, total, message))

            s.logs.clear()
            res = await c.call_tool("slow_count", {"steps": 4}, progress_callback=on_progress)
            assert not res.is_error, f"is_error: {text_of(res)}"
            assert text_of(res) == "counted 4", f"got {text_of(res)!r}"
            assert [g[0] for g in got] == [1, 2, 3, 4], f"progress {got!r}"
            assert all(g[1] == 4 for g in got) and got[-1][2] == "step 4/4", f"progress {got!r}"
            msgs = [str(p.data) for p in s.logs]
            assert any("slow_count starting with 4 steps" in m for m in msgs), f"log messages {msgs!r}"
            return f"{len(got)} progress notifications, {len(s.logs)} log message(s)"

        await r.check("tools/call with progress + log notifications", progress)

        async def concurrent() -> str:
            results: dict[int, Any] = {}

            async def one(i: int) -> None:
                results[i] = await c.call_tool("add", {"a": i, "b": 1000})

            async with anyio.create_task_group() as tg:
                tg.start_soon(c.call_tool, "slow_count", {"steps": 6})
                for i in range(6):
                    tg.start_soon(one, i)
            for i in range(6):
                assert results[i].structured_content == {"result": i + 1000}, f"call {i}: {results[i]!r}"
            return "6 adds alongside a slow call, ids correlated"

        await r.check("concurrent tools/call", concurrent)

        async def unknown_tool() -> str:
            try:
                res = await c.call_tool("no_such_tool", {})
            except MCPError as exc:
                return f"JSON-RPC error {exc.code}: {exc.error.message}"
            assert res.is_error, f"expected an error, got {res!r}"
            return f"isError result: {text_of(res)[:60]}"

        await r.check("tools/call unknown tool -> error", unknown_tool)

        async def resources() -> str:
            listed = {str(x.uri) for x in (await c.list_resources()).resources}
            assert "config://app" in listed, f"resources {listed}"
            res = await c.read_resource("config://app")
            body = json.loads(res.contents[0].text)
            assert body == {"name": "clerk-interop", "answer": 42}, f"contents {body!r}"
            templates = [t.uri_template for t in (await c.list_resource_templates()).resource_templates]
            assert "greeting://{name}" in templates, f"templates {templates}"
            res = await c.read_resource("greeting://wörld")
            assert res.contents[0].text == "Hello, wörld!", f"templated {res.contents[0].text!r}"
            return "list, read config://app, templates, read greeting://wörld"

        await r.check("resources", resources)

        async def prompts() -> str:
            names = [p.name for p in (await c.list_prompts()).prompts]
            assert "review" in names, f"prompts {names}"
            res = await c.get_prompt("review", {"code": "x = 1"})
            content = res.messages[0].content
            assert res.messages[0].role == "user" and "x = 1" in getattr(content, "text", ""), f"{res!r}"
            return "list, get review"

        await r.check("prompts", prompts)

        async def cancel() -> str:
            # Abandon a slow call: the SDK writes notifications/cancelled to the proxy's stdin
            # (modern: the proxy should abort that POST; legacy: forward it in the session).
            # Either way the connection must keep working.
            with anyio.move_on_after(0.3):
                await c.call_tool("slow_count", {"steps": 40})
            res = await c.call_tool("echo", {"text": "after cancel"})
            assert text_of(res) == "after cancel"
            return "abandoned slow call; next call fine"

        await r.check("cancel in-flight request", cancel)

        if not modern:

            async def ping() -> str:
                await c.session.send_ping()
                return "legacy-only ping"

            await r.check("ping", ping)

        if modern:

            async def listen() -> str:
                events: list[Any] = []
                async with c.listen(tools_list_changed=True, resource_subscriptions=["config://app"]) as sub:
                    assert sub.honored.tools_list_changed is True, f"honored {sub.honored!r}"
                    assert sub.honored.resource_subscriptions == ["config://app"], f"honored {sub.honored!r}"
                    res = await c.call_tool("poke", {})
                    assert text_of(res) == "poked", f"poke {text_of(res)!r}"
                    with anyio.fail_after(10):
                        async for event in sub:
                            events.append(event)
                            if len(events) == 2:
                                break
                kinds = sorted(type(e).__name__ for e in events)
                assert kinds == ["ResourceUpdated", "ToolsListChanged"], f"events {events!r}"
                # The listen POST was abandoned by the client; the proxy must keep serving.
                res = await c.call_tool("echo", {"text": "after listen"})
                assert text_of(res) == "after listen"
                return "ack + tools/list_changed + resources/updated(config://app); proxy still serves after close"

            await r.check("subscriptions/listen", listen, timeout=30)

    finally:
        t0 = time.monotonic()
        try:
            await c.__aexit__(None, None, None)  # stdio_client bounds this: close stdin, wait 2 s, SIGTERM, SIGKILL
        except Exception as exc:  # noqa: BLE001
            r.fail("shutdown", describe(exc))
        else:
            took = time.monotonic() - t0
            if took >= 1.9:
                r.fail("shutdown", f"proxy took {took:.1f}s to exit after stdin EOF (the SDK escalates to SIGTERM at 2 s)")
            else:
                r.ok("shutdown", f"proxy exited {took * 1000:.0f} ms after stdin EOF")

    if modern and r.dead is None:
        # Fresh proxy process: call the x-mcp-header tool BEFORE anything listed tools.
        # A proxy that derives Mcp-Param-* only from tools/list it has seen cannot set the
        # header; the server answers -32020 and the SDK client re-lists once and retries.
        s2 = Session(era, args.modern_mode, args.cmd, args.url, args.trace, errlog)

        async def cold_header_call() -> str:
            async with s2.client as c2:
                res = await c2.call_tool("route_to", {"region": "ap-south-1", "payload": "cold"})
                assert not res.is_error, f"is_error: {text_of(res)}"
                seen = res.structured_content or {}
                assert seen.get("mcpParamRegionHeader") == "ap-south-1", f"server saw {seen!r}"
            return "first call on a fresh proxy succeeded (possibly after the SDK's -32020 re-list retry)"

        await r.check("x-mcp-header tool called before tools/list (fresh proxy)", cold_header_call, timeout=40)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--era", choices=["legacy", "modern"], required=True)
    parser.add_argument("--url", default=os.environ.get("INTEROP_URL"), help="server URL appended to BIN ARGS")
    parser.add_argument("--modern-mode", choices=["auto", "pinned"], default="auto")
    parser.add_argument("--timeout", type=float, default=60.0, help="bound for the whole run, seconds")
    parser.add_argument("--trace", metavar="FILE", help="log the proxy's stdio traffic to FILE (via stdio_tee.py)")
    parser.add_argument("--proxy-stderr", metavar="FILE", help="append the proxy's stderr to FILE")
    parser.add_argument(
        "--expect-session", action="store_true", help="legacy: require Mcp-Session-Id (stateful server)"
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER, metavar="BIN [ARGS...]")
    args = parser.parse_args()
    if not args.cmd or not args.url:
        parser.error("need --url (or INTEROP_URL) and BIN")
    label = args.era if args.era == "legacy" else f"modern-{args.modern_mode}"
    r = Runner(label)
    errlog: TextIO = open(args.proxy_stderr, "a", buffering=1) if args.proxy_stderr else sys.stderr

    async def body() -> None:
        with anyio.move_on_after(args.timeout) as scope:
            await run_checks(args, r, errlog)
        if scope.cancelled_caught:
            r.fail("overall", f"run exceeded {args.timeout:.0f}s")

    try:
        anyio.run(body)
    except BaseException as exc:  # noqa: BLE001
        r.fail("client crashed", describe(exc))
        traceback.print_exc()
    print(f"RESULT era={label} passed={r.passed} failed={r.failed}", flush=True)
    sys.stdout.flush()
    os._exit(0 if r.failed == 0 and r.passed > 0 else 1)


if __name__ == "__main__":
    main()
