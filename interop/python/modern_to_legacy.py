#!/usr/bin/env python3
"""Era translation interop: a modern client before a legacy-only server (M-BACKPORT).

Usage:
    python modern_to_legacy.py --node NODE --everything ENTRY [--log-dir DIR] BIN [ARGS...]

Starts @modelcontextprotocol/server-everything (TypeScript SDK 1.x: it speaks only the
initialize-based era) over Streamable HTTP on a free 127.0.0.1 port, then drives
`BIN ARGS... URL` with the `mcp` 2.x SDK's stdio client pinned to 2026-07-28
(`Client(mode="2026-07-28")`: no initialize, every request carries the `_meta`
envelope). The proxy must open a legacy session on the client's behalf and translate.

Prints one PASS/FAIL line per check, then `modern-to-legacy: N passed, M failed`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio

from mcp import Client, StdioServerParameters, stdio_client, types
from mcp.types import (
    CreateMessageResult,
    ElicitResult,
    Implementation,
    TextContent,
)

HERE = Path(__file__).resolve().parent
MODERN = "2026-07-28"
CHECK_TIMEOUT = 25.0
LISTS = ("tools/list", "prompts/list", "resources/list", "resources/templates/list", "resources/read")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_everything(node: str, entry: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    for _ in range(3):
        port = free_port()
        proc = subprocess.Popen(
            [node, entry, "streamableHttp"],
            env={**os.environ, "PORT": str(port)},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return proc, f"http://127.0.0.1:{port}/mcp"
            except OSError:
                time.sleep(0.1)
        proc.kill()
    raise RuntimeError(f"server-everything did not start; see {log}")


class Runner:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    async def check(self, name: str, fn: Any, timeout: float = CHECK_TIMEOUT) -> None:
        t0 = time.monotonic()
        try:
            with anyio.fail_after(timeout):
                detail = await fn()
        except BaseException as exc:  # noqa: BLE001 - every failure is a FAIL line
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            self.failed += 1
            print(f"FAIL [modern-to-legacy] {name}: {type(exc).__name__}: {exc}", flush=True)
            return
        self.passed += 1
        ms = (time.monotonic() - t0) * 1000
        print(f"PASS [modern-to-legacy] {name} ({detail}; {ms:.0f} ms)", flush=True)


def text_of(result: Any) -> str:
    return "".join(getattr(b, "text", "") for b in result.content)


async def run(args: argparse.Namespace, url: str, trace: Path, r: Runner) -> None:
    answers = {"elicit": "accept"}

    async def on_elicit(_ctx: Any, params: Any) -> ElicitResult:
        if answers["elicit"] == "decline":
            return ElicitResult(action="decline")
        return ElicitResult(action="accept", content={"name": "Ada Lovelace", "check": True})

    async def on_sample(_ctx: Any, params: Any) -> CreateMessageResult:
        return CreateMessageResult(
            role="assistant", content=TextContent(type="text", text="sampled by the interop client"), model="interop"
        )

    logs: list[Any] = []

    async def on_log(params: Any) -> None:
        logs.append(params)

    argv = [sys.executable, str(HERE / "stdio_tee.py"), str(trace), *args.cmd, url]
    errlog = open(args.proxy_stderr, "a", buffering=1) if args.proxy_stderr else sys.stderr
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
    client = Client(
        stdio_client(params, errlog=errlog),
        mode=MODERN,
        client_info=Implementation(name="clerk-interop-modern", version="1.0.0"),
        read_timeout_seconds=CHECK_TIMEOUT,
        elicitation_callback=on_elicit,
        sampling_callback=on_sample,
        logging_callback=on_log,
        log_level="debug",
        cache=None,
    )
    await client.__aenter__()
    c = client
    try:

        async def connect() -> str:
            assert c.protocol_version == MODERN, f"protocol {c.protocol_version!r}"
            assert c.session.initialize_result is None, "the client made an initialize"
            return f"pinned {MODERN}, no initialize from the client"

        await r.check("connect", connect)

        async def discover() -> str:
            # Sent on the wire (a pinned client's own discover() does not ask the server).
            raw = await c.session.send_discover(MODERN)
            d = types.DiscoverResult.model_validate(raw)
            assert MODERN in d.supported_versions, f"supported {d.supported_versions!r}"
            assert d.capabilities.tools is not None, f"capabilities {d.capabilities!r}"
            info = (d.meta or {}).get("io.modelcontextprotocol/serverInfo") or {}
            assert "everything" in str(info.get("name", "")), f"server info {info!r}"
            caps = sorted(d.capabilities.model_dump(exclude_none=True))
            return f"answered from the legacy initialize: {info.get('name')}, capabilities {caps}"

        await r.check("server/discover", discover)

        async def list_tools() -> str:
            names = {t.name for t in (await c.list_tools()).tools}
            want = {"echo", "get-sum", "trigger-long-running-operation", "trigger-elicitation-request"}
            assert want <= names, f"missing {sorted(want - names)} in {sorted(names)}"
            return f"{len(names)} tools (the elicitation tool is there: the session declared the client's capabilities)"

        await r.check("tools/list", list_tools)

        async def echo() -> str:
            res = await c.call_tool("echo", {"message": "hello, wörld ✓"})
            assert text_of(res) == "Echo: hello, wörld ✓", f"got {text_of(res)!r}"
            return "unicode round-trip"

        await r.check("tools/call echo", echo)

        async def add() -> str:
            res = await c.call_tool("get-sum", {"a": 2, "b": 40})
            assert "42" in text_of(res), f"got {text_of(res)!r}"
            return "2+40"

        await r.check("tools/call get-sum", add)

        async def progress() -> str:
            got: list[float] = []

            async def on_progress(p: float, total: float | None, message: str | None) -> None:
                got.append(p)

            res = await c.call_tool(
                "trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress
            )
            assert not res.is_error, text_of(res)
            assert got == [1, 2, 3], f"progress {got!r}"
            return "3 progress notifications"

        await r.check("tools/call with progress", progress)

        async def elicit() -> str:
            res = await c.call_tool("trigger-elicitation-request", {})
            body = text_of(res)
            assert "Ada Lovelace" in body, f"result {body[:300]!r}"
            return "the server's elicitation/create came as input_required; the answer reached the server"

        await r.check("elicitation (MRTR from a legacy server request)", elicit)

        async def decline() -> str:
            answers["elicit"] = "decline"
            try:
                res = await c.call_tool("trigger-elicitation-request", {})
            finally:
                answers["elicit"] = "accept"
            body = text_of(res).lower()
            assert "decline" in body, f"result {body[:300]!r}"
            return "declined elicitation reported by the server"

        await r.check("declined elicitation", decline)

        async def sampling() -> str:
            res = await c.call_tool("trigger-sampling-request", {"prompt": "hi", "maxTokens": 10})
            assert "sampled by the interop client" in text_of(res), f"result {text_of(res)[:300]!r}"
            return "sampling/createMessage round trip"

        await r.check("sampling (MRTR)", sampling)

        async def logging() -> str:
            logs.clear()
            res = await c.call_tool("toggle-simulated-logging", {})
            assert not res.is_error, text_of(res)
            res = await c.call_tool("echo", {"message": "after logging"})
            assert text_of(res) == "Echo: after logging"
            return "logLevel accepted (logging/setLevel on the session); the server's session-wide logs stay out of requests"

        await r.check("logging", logging)

        async def resources() -> str:
            listed = (await c.list_resources()).resources
            assert listed, "no resources"
            uri = str(listed[0].uri)
            read = await c.read_resource(uri)
            assert read.contents, f"read {uri}: {read!r}"
            return f"{len(listed)} resources; read {uri}"

        await r.check("resources", resources)

        async def subscribe() -> str:
            uri = str((await c.list_resources()).resources[0].uri)
            async with c.listen(tools_list_changed=True, resource_subscriptions=[uri]) as sub:
                assert sub.honored.resource_subscriptions == [uri], f"honored {sub.honored!r}"
                await c.call_tool("toggle-subscriber-updates", {})
                with anyio.fail_after(15):
                    async for event in sub:
                        if type(event).__name__ == "ResourceUpdated":
                            break
            await c.call_tool("toggle-subscriber-updates", {})
            res = await c.call_tool("echo", {"message": "after listen"})
            assert text_of(res) == "Echo: after listen"
            return f"listen acknowledged; resources/updated({uri}) arrived on the listen"

        await r.check("resource subscription (subscriptions/listen)", subscribe, timeout=40)
    finally:
        t0 = time.monotonic()
        try:
            await c.__aexit__(None, None, None)
        except Exception as exc:  # noqa: BLE001
            r.failed += 1
            print(f"FAIL [modern-to-legacy] shutdown: {exc}", flush=True)
        else:
            took = time.monotonic() - t0
            if took >= 1.9:
                r.failed += 1
                print(f"FAIL [modern-to-legacy] shutdown: {took:.1f} s after stdin EOF", flush=True)
            else:
                r.passed += 1
                print(f"PASS [modern-to-legacy] shutdown ({took * 1000:.0f} ms after stdin EOF)", flush=True)


def check_wire(trace: Path, r: Runner) -> None:
    """Every result the client got carries what the 2026-07-28 schema requires."""
    sent: dict[str, str] = {}
    bad: list[str] = []
    results = 0
    for line in trace.read_text(encoding="utf-8").splitlines():
        parts = line.split(None, 2)
        if len(parts) < 3 or parts[1] not in "<>":
            continue
        try:
            msg = json.loads(parts[2])
        except ValueError:
            continue
        if parts[1] == ">" and "method" in msg and "id" in msg:
            sent[json.dumps(msg["id"])] = msg["method"]
        if parts[1] == "<" and isinstance(msg.get("result"), dict):
            results += 1
            res, method = msg["result"], sent.get(json.dumps(msg.get("id")), "?")
            if "resultType" not in res:
                bad.append(f"{method}: no resultType")
            if method in LISTS and ("ttlMs" not in res or res.get("cacheScope") not in ("public", "private")):
                bad.append(f"{method}: no ttlMs/cacheScope")
        if parts[1] == "<" and msg.get("method") == "notifications/message":
            bad.append("a log message reached the client outside the requests that asked for logs")
    if bad or results == 0:
        r.failed += 1
        print(f"FAIL [modern-to-legacy] results complete for 2026-07-28: {bad[:5] or 'no results seen'}", flush=True)
    else:
        r.passed += 1
        print(f"PASS [modern-to-legacy] results complete for 2026-07-28 ({results} results checked on the wire)", flush=True)


def check_quiet(stderr: Path, r: Runner) -> None:
    """A session that went as it should leaves no warning in the proxy's log."""
    warnings = [line for line in stderr.read_text().splitlines() if " WARN " in line or " ERROR " in line]
    if warnings:
        r.failed += 1
        print(f"FAIL [modern-to-legacy] no warnings in the proxy's log: {warnings[:3]}", flush=True)
    else:
        r.passed += 1
        print("PASS [modern-to-legacy] no warnings in the proxy's log", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--node", required=True)
    p.add_argument("--everything", required=True, help="server-everything's dist/index.js")
    p.add_argument("--log-dir", default=None)
    p.add_argument("--proxy-stderr", default=None)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    args = p.parse_args()
    log_dir = Path(args.log_dir or os.environ.get("TMPDIR", "/tmp"))
    log_dir.mkdir(parents=True, exist_ok=True)
    trace = log_dir / "stdio-modern-to-legacy.log"
    trace.write_text("")
    r = Runner()
    proc = None
    try:
        proc, url = start_everything(args.node, args.everything, log_dir / "server-everything.log")
        print(f"# server-everything (legacy-only) at {url}", flush=True)

        async def body() -> None:
            with anyio.move_on_after(150) as scope:
                await run(args, url, trace, r)
            if scope.cancelled_caught:
                r.failed += 1
                print("FAIL [modern-to-legacy] overall: over 150 s", flush=True)

        anyio.run(body)
        check_wire(trace, r)
        if args.proxy_stderr:
            check_quiet(Path(args.proxy_stderr), r)
    except BaseException as exc:  # noqa: BLE001
        r.failed += 1
        print(f"FAIL [modern-to-legacy] crashed: {type(exc).__name__}: {exc}", flush=True)
    finally:
        if proc is not None:
            proc.kill()
    print(f"modern-to-legacy: {r.passed} passed, {r.failed} failed", flush=True)
    sys.stdout.flush()
    os._exit(0 if r.failed == 0 and r.passed > 0 else 1)


if __name__ == "__main__":
    main()
