#!/usr/bin/env python3
"""Smoke test of a clerk-mcp-server binary (the Windows .exe under Wine, in CI).

Usage:
    smoke.py --python PY --server SERVER_PY --version V --log-dir DIR -- PROXY_CMD...

PROXY_CMD is how to start the proxy, e.g. `wine64 C:/path/clerk-mcp-server.exe`; the
proxy's own arguments are appended to it. PY is the interpreter that has the `mcp` SDK
(interop/python/.venv) and SERVER_PY is interop/python/server.py, started twice on
free loopback ports: once for Streamable HTTP, once with --sse for the 2024-11-05
HTTP+SSE transport. Both log every HTTP request they get (--log-headers).

Checks, one PASS/FAIL line each:
* `--version` prints `clerk-mcp-server V`;
* `check URL` (and `check --transport sse URL`) exits 0 and lists the tools;
* on each transport, a stdio session: initialize, notifications/initialized,
  tools/list, tools/call echo and add, tools/call slow_count with a progressToken whose
  notifications/progress all arrive before its result, then EOF on stdin, after which
  the proxy exits 0 and ends the session: a DELETE carrying the session id (Streamable
  HTTP), or the closed GET event stream (HTTP+SSE, which has no DELETE);
* `--token-store keychain` on Wine's Credential Manager: a sign-in left in a file, a
  token set larger than one 2,560-byte entry, moves into it (the file goes), is listed
  from it by `status --json` twice, and is gone after `logout --all`.

The last line is `windows-smoke: N passed, M failed`; the exit status is 1 on any failure.
Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

WAIT = 30.0  # one answer from the proxy (Wine adds start-up time)
EXIT_WAIT = 15.0  # the proxy's exit after stdin EOF
TOOLS = {"echo", "add", "slow_count"}

passed = 0
failed = 0


def check(name: str, ok: bool, detail: str = "") -> bool:
    global passed, failed
    if ok:
        passed += 1
        print(f"PASS {name}" + (f" ({detail})" if detail else ""), flush=True)
    else:
        failed += 1
        print(f"FAIL {name}" + (f": {detail}" if detail else ""), flush=True)
    return ok


def clip(s: str, n: int = 400) -> str:
    s = s.strip()
    return s if len(s) <= n else s[:n] + "…"


class Server:
    """server.py on a free loopback port, logging every HTTP request to a file."""

    def __init__(self, python: str, script: str, log_dir: Path, name: str, extra: list[str]) -> None:
        self.log = log_dir / f"http-{name}.jsonl"
        self.log.write_text("")
        self.out = open(log_dir / f"server-{name}.out", "w+")
        self.err = open(log_dir / f"server-{name}.err", "w")
        self.proc = subprocess.Popen(
            [python, script, "--port", "0", "--log-headers", str(self.log), *extra],
            stdout=self.out,
            stderr=self.err,
            stdin=subprocess.DEVNULL,
        )
        self.port = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.proc.poll() is None:
            self.out.seek(0)
            words = self.out.readline().split()
            if len(words) == 2 and words[0] == "PORT":
                self.port = int(words[1])
                break
            time.sleep(0.1)
        if self.port:
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), 1).close()
                    return
                except OSError:
                    time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server.py {' '.join(extra)} did not start; see {self.err.name}")

    def requests(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def run(cmd: list[str], timeout: float) -> tuple[int | None, str, str]:
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return None, (e.stdout or b"").decode("utf-8", "replace"), (e.stderr or b"").decode("utf-8", "replace")
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


class Proxy:
    """The proxy on pipes: write JSON-RPC lines, read its stdout lines with a deadline."""

    def __init__(self, cmd: list[str], stderr_path: Path) -> None:
        self.stderr = open(stderr_path, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr)
        self.lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, msg: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(msg, ensure_ascii=False).encode() + b"\n")
        self.proc.stdin.flush()

    def until(self, want_id: int, timeout: float = WAIT) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """Messages up to the response to `want_id`: (response or None, everything before it)."""
        before: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, before
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None, before
            if line is None:
                return None, before
            try:
                msg = json.loads(line)
            except ValueError:
                before.append({"unparsable": line.decode("utf-8", "replace")})
                continue
            if msg.get("id") == want_id and ("result" in msg or "error" in msg):
                return msg, before
            before.append(msg)

    def close_stdin(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def text_of(result: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in result.get("content", []) if c.get("type") == "text")


def session(proxy_cmd: list[str], server: Server, url: str, label: str, args: list[str], log_dir: Path) -> None:
    p = Proxy([*proxy_cmd, *args, url], log_dir / f"proxy-stderr-{label}.log")
    try:
        _session(p, server, label)
    finally:
        p.kill()


def _session(p: Proxy, server: Server, label: str) -> None:
    p.send(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "windows-smoke", "version": "1.0.0"},
            },
        }
    )
    r, _ = p.until(1)
    result = (r or {}).get("result") or {}
    info = result.get("serverInfo") or {}
    ok = info.get("name") == "clerk-interop-server"
    detail = f"{info.get('name')} {info.get('version')}, protocol {result.get('protocolVersion')}"
    if not check(f"[{label}] initialize", ok, detail if ok else clip(json.dumps(r))):
        return
    p.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    p.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    r, _ = p.until(2)
    names = {t.get("name") for t in ((r or {}).get("result") or {}).get("tools", [])}
    check(f"[{label}] tools/list", TOOLS <= names, ", ".join(sorted(n for n in names if n)) or clip(json.dumps(r)))

    text = "héllo ✓ from Windows"
    p.send({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": text}}})
    r, _ = p.until(3)
    got = text_of((r or {}).get("result") or {})
    check(f"[{label}] tools/call echo (unicode)", got == text, f"got {got!r}" if got != text else "")

    p.send({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 2, "b": 40}}})
    r, _ = p.until(4)
    got = text_of((r or {}).get("result") or {})
    check(f"[{label}] tools/call add", got == "42", f"got {clip(json.dumps(r))}" if got != "42" else "")

    token = f"progress-{label}"
    p.send(
        {
            "jsonrpc": "2.0",
            "id": 5,
            "method": "tools/call",
            "params": {"name": "slow_count", "arguments": {"steps": 3}, "_meta": {"progressToken": token}},
        }
    )
    r, before = p.until(5)
    progress = [
        m["params"].get("progress")
        for m in before
        if m.get("method") == "notifications/progress" and (m.get("params") or {}).get("progressToken") == token
    ]
    got = text_of((r or {}).get("result") or {})
    check(f"[{label}] tools/call slow_count", got == "counted 3", f"got {clip(json.dumps(r))}" if got != "counted 3" else "")
    check(
        f"[{label}] progress notifications before the result",
        r is not None and progress == [1, 2, 3],
        f"progress {progress}" + ("" if r is not None else ", no result"),
    )

    # EOF on stdin: the proxy ends the session and exits.
    t = time.monotonic()
    p.close_stdin()
    try:
        rc: int | None = p.proc.wait(EXIT_WAIT)
    except subprocess.TimeoutExpired:
        rc = None
    check(
        f"[{label}] exit 0 after stdin EOF",
        rc == 0,
        f"{time.monotonic() - t:.1f} s" if rc == 0 else f"exit status {rc} (None: still running after {EXIT_WAIT:.0f} s)",
    )

    if label == "sse":
        # HTTP+SSE (2024-11-05) has no DELETE: the session ends with its GET event stream.
        ok, seen = poll(lambda: any(q.get("ended") and q.get("path") == "/sse" for q in server.requests()))
        check(f"[{label}] session ended: the GET event stream closed", ok, seen)
        return
    reqs = server.requests()
    sid = next(
        (v for q in reqs if q.get("method") == "POST" for k, v in q.get("headers", []) if k == "mcp-session-id"), None
    )
    if not check(f"[{label}] the session has an Mcp-Session-Id", sid is not None):
        return

    def deleted() -> bool:
        return any(
            q.get("method") == "DELETE" and ["mcp-session-id", sid] in q.get("headers", []) for q in server.requests()
        )

    ok, seen = poll(deleted)
    check(f"[{label}] DELETE of the session after stdin EOF", ok, seen if ok else f"no DELETE with Mcp-Session-Id {sid}")


def keychain(cmd: list[str], log_dir: Path) -> None:
    cfg = log_dir / "keychain-config"
    (cfg / "tokens").mkdir(parents=True, exist_ok=True)
    server = "https://mcp.example.test/mcp"
    record = {
        "server_url": server,
        "resource": server,
        "issuer": "https://auth.example.test",
        "token_endpoint": "https://auth.example.test/token",
        "tokens": {"access_token": "at-" + "x" * 3000, "refresh_token": "rt-" + "y" * 3000, "expires_at": 4102444800},
    }
    filed = cfg / "tokens" / "mcp.example.test-0123456789abcdef.json"
    filed.write_text(json.dumps(record))
    # A Windows path for the Windows program: Wine's Z: drive is the Unix root.
    windows_cfg = "Z:" + str(cfg).replace("/", "\\")
    store = ["--token-store", "keychain", "--config-dir", windows_cfg]

    def listed() -> tuple[list[Any] | None, str]:
        code, out, err = run([*cmd, "status", "--json", *store], 60)
        try:
            return (json.loads(out) if code == 0 else None), f"exit {code}; {clip(out + err, 800)}"
        except json.JSONDecodeError:
            return None, f"exit {code}; {clip(out + err, 800)}"

    got, detail = listed()
    ok = got is not None and [e.get("server") for e in got] == [server]
    check("[keychain] status moves a filed sign-in into the Credential Manager and lists it", ok, "" if ok else detail)
    marker = filed.with_suffix(".keychain")
    check("[keychain] the token file is gone, a marker is left", not filed.exists() and marker.exists())
    got, detail = listed()
    ok = got is not None and [e.get("can_refresh") for e in got] == [True]
    check("[keychain] read back from the Credential Manager (split over entries)", ok, "" if ok else detail)
    code, out, err = run([*cmd, "logout", "--all", *store], 60)
    got, detail = listed()
    check("[keychain] logout --all empties it", code == 0 and got == [], f"logout exit {code}; {detail}")


def poll(cond: Any, timeout: float = 5.0) -> tuple[bool, str]:
    t = time.monotonic()
    while True:
        if cond():
            return True, f"seen after {time.monotonic() - t:.1f} s"
        if time.monotonic() - t > timeout:
            return False, f"not seen within {timeout:.0f} s"
        time.sleep(0.1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--version", required=True, help="the version --version must print")
    ap.add_argument("--log-dir", required=True, type=Path)
    ap.add_argument("proxy", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.proxy[1:] if a.proxy[:1] == ["--"] else a.proxy
    if not cmd:
        ap.error("no proxy command")
    a.log_dir.mkdir(parents=True, exist_ok=True)

    code, out, err = run([*cmd, "--version"], 60)
    want = f"clerk-mcp-server {a.version}"
    check("--version", code == 0 and out.strip() == want, f"{out.strip()!r}, exit {code}, stderr {clip(err)!r}" if out.strip() != want or code != 0 else out.strip())

    servers: list[Server] = []
    try:
        try:
            http = Server(a.python, a.server, a.log_dir, "streamable", [])
            servers.append(http)
            sse = Server(a.python, a.server, a.log_dir, "sse", ["--sse"])
            servers.append(sse)
        except RuntimeError as e:
            check("start server.py", False, str(e))
            return finish()
        http_url = f"http://127.0.0.1:{http.port}/mcp"
        sse_url = f"http://127.0.0.1:{sse.port}/sse"
        for label, args, url in (("streamable", [], http_url), ("sse", ["--transport", "sse"], sse_url)):
            code, out, err = run([*cmd, "check", *args, url], 60)
            listed = next((line for line in out.splitlines() if "tools (" in line), "")
            ok = code == 0 and all(t in listed for t in TOOLS)
            check(f"[{label}] check {' '.join(args + [url])}", ok, listed.strip() if ok else f"exit {code}; {clip(out + err, 800)}")
        session(cmd, http, http_url, "streamable", [], a.log_dir)
        session(cmd, sse, sse_url, "sse", ["--transport", "sse"], a.log_dir)
        keychain(cmd, a.log_dir)
    finally:
        for s in servers:
            s.stop()
    return finish()


def finish() -> int:
    print(f"windows-smoke: {passed} passed, {failed} failed", flush=True)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
