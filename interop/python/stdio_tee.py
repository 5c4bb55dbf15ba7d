#!/usr/bin/env python3
"""Debug aid: transparent stdio wrapper that logs every line in both directions.

Usage: python stdio_tee.py LOGFILE CMD [ARGS...]

Runs CMD with stdin/stdout piped through this process; each line written to
CMD's stdin is logged as `> line`, each line CMD writes to stdout as `< line`
(stderr is inherited untouched). client.py uses it for `--trace FILE`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit("usage: stdio_tee.py LOGFILE CMD [ARGS...]")
    log_path, cmd = sys.argv[1], sys.argv[2:]
    log = open(log_path, "a", encoding="utf-8", buffering=1)
    lock = threading.Lock()
    t0 = time.monotonic()

    def note(prefix: str, line: bytes) -> None:
        with lock:
            log.write(f"{time.monotonic() - t0:8.3f} {prefix} {line.decode('utf-8', 'replace').rstrip()}\n")

    child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdin is not None and child.stdout is not None

    def forward_signal(signum: int, _frame: object) -> None:
        note("#", f"signal {signum} forwarded".encode())
        try:
            child.send_signal(signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward_signal)
    signal.signal(signal.SIGINT, forward_signal)

    def pump_in() -> None:
        stdin = sys.stdin.buffer
        try:
            for line in iter(stdin.readline, b""):
                note(">", line)
                child.stdin.write(line)
                child.stdin.flush()
        except (BrokenPipeError, OSError):
            pass
        note("#", b"stdin EOF -> closing child's stdin")
        try:
            child.stdin.close()
        except OSError:
            pass

    threading.Thread(target=pump_in, daemon=True).start()
    out = sys.stdout.buffer
    for line in iter(child.stdout.readline, b""):
        note("<", line)
        try:
            out.write(line)
            out.flush()
        except BrokenPipeError:
            break
    rc = child.wait()
    note("#", f"child exited rc={rc}".encode())
    os._exit(rc if rc >= 0 else 128 - rc)


if __name__ == "__main__":
    main()
