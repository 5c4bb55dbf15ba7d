#!/usr/bin/env python3
"""Play an MCP client against a stdio command (here: `podman run -i ... IMAGE URL`).

Sends initialize, notifications/initialized, tools/list and tools/call echo on the command's
stdin, one at a time like a real client (each request waits for its answer), checks each answer
against the exact JSON the mock server gives, closes stdin and waits for the command to exit.
Prints one `ok: ...` or `FAIL: ...` line per check (smoke.sh counts them). Standard library only.

  stdio_session.py [--timeout S] [--container NAME --podman PODMAN] -- COMMAND...

With --container, the uid/gid of the container's main process are read from /proc while the
session is open (PODMAN inspect NAME gives its pid), to prove it really runs as non-root.
"""

import argparse
import json
import os
import queue
import subprocess
import sys
import threading
import time

PROTOCOL = "2025-06-18"
ECHO_ARGS = {"text": "hello from the container"}

EXPECTED = {
    "initialize": {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "protocolVersion": PROTOCOL,
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "clerk-smoke-mock", "version": "1.0.0"},
        },
    },
    "tools/list": {
        "jsonrpc": "2.0",
        "id": "list-1",
        "result": {
            "tools": [
                {
                    "name": "echo",
                    "description": "Returns its arguments as text.",
                    "inputSchema": {
                        "type": "object",
                        "properties": {"text": {"type": "string"}},
                        "required": ["text"],
                    },
                }
            ]
        },
    },
    "tools/call": {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {
            "content": [{"type": "text", "text": json.dumps(ECHO_ARGS, sort_keys=True)}],
            "isError": False,
        },
    },
}

REQUESTS = {
    "initialize": {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL,
            "capabilities": {},
            "clientInfo": {"name": "clerk-container-smoke", "version": "1.0.0"},
        },
    },
    "initialized": {"jsonrpc": "2.0", "method": "notifications/initialized"},
    "tools/list": {"jsonrpc": "2.0", "id": "list-1", "method": "tools/list", "params": {}},
    "tools/call": {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "echo", "arguments": ECHO_ARGS},
    },
}

results = []


def check(name, good, detail=""):
    results.append(good)
    print(("ok: " if good else "FAIL: ") + name + ("" if good or not detail else f" ({detail})"),
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=30.0, help="per answer, and for the exit")
    ap.add_argument("--container")
    ap.add_argument("--podman", default="podman")
    ap.add_argument("--stderr-file", help="where the command's stderr goes (default: inherit)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command")

    stderr = open(args.stderr_file, "wb") if args.stderr_file else None
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    lines = queue.Queue()
    extra = []

    def reader():
        for raw in proc.stdout:
            lines.put(raw)
        lines.put(None)

    threading.Thread(target=reader, daemon=True).start()

    def send(msg):
        proc.stdin.write((json.dumps(msg) + "\n").encode())
        proc.stdin.flush()

    def answer(want_id):
        """The next stdout line that answers want_id; other lines are kept as extras."""
        deadline = time.monotonic() + args.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "no answer within %.0fs" % args.timeout
            try:
                raw = lines.get(timeout=left)
            except queue.Empty:
                continue
            if raw is None:
                return None, "stdout closed (exit %s)" % proc.poll()
            try:
                msg = json.loads(raw)
            except ValueError:
                extra.append(raw)
                continue
            if isinstance(msg, dict) and msg.get("id") == want_id and "method" not in msg:
                return msg, ""
            extra.append(raw)

    def exchange(key):
        try:
            send(REQUESTS[key])
        except (BrokenPipeError, OSError) as e:
            check(f"{key}: answer matches exactly", False, f"stdin closed: {e}")
            return False
        got, why = answer(REQUESTS[key]["id"])
        want = EXPECTED[key]
        if got is None:
            check(f"{key}: answer matches exactly", False, why)
            return False
        check(f"{key}: answer matches exactly", got == want,
              f"got {json.dumps(got, sort_keys=True)}")
        return got == want

    try:
        if exchange("initialize"):
            send(REQUESTS["initialized"])
            exchange("tools/list")
            exchange("tools/call")

            if args.container:
                uid = gid = None
                try:
                    pid = subprocess.run(
                        [args.podman, "inspect", "--format", "{{.State.Pid}}", args.container],
                        capture_output=True, text=True, timeout=20, check=True,
                    ).stdout.strip()
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("Uid:"):
                                uid = line.split()[1:]
                            elif line.startswith("Gid:"):
                                gid = line.split()[1:]
                except Exception as e:  # noqa: BLE001 - reported as a failed check
                    uid = gid = f"error: {e}"
                check("the proxy process in the container runs as uid/gid 65532",
                      uid == ["65532"] * 4 and gid == ["65532"] * 4, f"uid {uid}, gid {gid}")
    finally:
        try:
            proc.stdin.close()
        except OSError:
            pass

    t0 = time.monotonic()
    try:
        rc = proc.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        check("container exits after stdin closes", False,
              f"still running after {args.timeout:.0f}s: killed")
    else:
        check(f"container exits 0 after stdin closes (in {time.monotonic() - t0:.1f}s)",
              rc == 0, f"exit {rc}")

    # Whatever was still queued: stdout must carry JSON-RPC answers and nothing else.
    while True:
        try:
            raw = lines.get(timeout=2)
        except queue.Empty:
            break
        if raw is None:
            break
        extra.append(raw)
    check("stdout carries nothing but the answers", not extra,
          "extra: " + b"".join(extra)[:500].decode("utf-8", "replace"))
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
