#!/usr/bin/env python3
"""A tiny MCP Streamable HTTP server for the container smoke test (standard library only).

POST /mcp  initialize               -> 200 JSON result (protocolVersion echoed) + Mcp-Session-Id
           notifications/*           -> 202, no body
           tools/list                -> one tool, `echo`
           tools/call echo           -> text content: the JSON of the arguments
           anything else             -> JSON-RPC error -32601
GET  /mcp                            -> 405 (no server-initiated stream)
DELETE /mcp                          -> 200, and recorded

After initialize every request must carry the session id (else 404, as the spec says for an
unknown session) and an Accept header naming both application/json and text/event-stream
(else 406). Every request is appended to --log as one JSON line, so the test can check what
the proxy sent. The chosen port is written to --port-file once the socket is listening.
The server stops by itself after --lifetime seconds.
"""

import argparse
import json
import os
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVER_INFO = {"name": "clerk-smoke-mock", "version": "1.0.0"}
ECHO_TOOL = {
    "name": "echo",
    "description": "Returns its arguments as text.",
    "inputSchema": {
        "type": "object",
        "properties": {"text": {"type": "string"}},
        "required": ["text"],
    },
}


class State:
    def __init__(self, log_path):
        self.lock = threading.Lock()
        self.sessions = set()
        self.log_path = log_path

    def record(self, entry):
        with self.lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, sort_keys=True) + "\n")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "clerk-smoke-mock/1"
    state: State = None  # set in main()

    def log_message(self, fmt, *args):  # keep stderr quiet; the JSON log is the record
        pass

    # -- helpers -------------------------------------------------------------------------
    def _record(self, body=None, status=None):
        self.state.record(
            {
                "method": self.command,
                "path": self.path,
                "session": self.headers.get("Mcp-Session-Id"),
                "protocol_version": self.headers.get("MCP-Protocol-Version"),
                "accept": self.headers.get("Accept"),
                "body": body,
                "status": status,
            }
        )

    def _send(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data:
            self.wfile.write(data)

    def _path_ok(self):
        if self.path.split("?", 1)[0] != "/mcp":
            self._record(status=404)
            self._send(404)
            return False
        return True

    def _session_ok(self):
        sid = self.headers.get("Mcp-Session-Id")
        with self.state.lock:
            return sid is not None and sid in self.state.sessions

    # -- verbs ---------------------------------------------------------------------------
    def do_GET(self):
        if not self._path_ok():
            return
        self._record(status=405)
        self._send(405, headers={"Allow": "POST, DELETE"})

    def do_DELETE(self):
        if not self._path_ok():
            return
        ok = self._session_ok()
        status = 200 if ok else 404
        if ok:
            with self.state.lock:
                self.state.sessions.discard(self.headers.get("Mcp-Session-Id"))
        self._record(status=status)
        self._send(status)

    def do_POST(self):
        if not self._path_ok():
            return
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            msg = json.loads(raw)
        except ValueError:
            self._record(body=raw.decode("utf-8", "replace"), status=400)
            self._send(400, {"jsonrpc": "2.0", "id": None,
                             "error": {"code": -32700, "message": "Parse error"}})
            return

        accept = self.headers.get("Accept", "")
        if "application/json" not in accept or "text/event-stream" not in accept:
            self._record(body=msg, status=406)
            self._send(406)
            return

        method = msg.get("method") if isinstance(msg, dict) else None
        if method != "initialize" and not self._session_ok():
            self._record(body=msg, status=404)
            self._send(404, {"jsonrpc": "2.0", "id": None,
                             "error": {"code": -32001, "message": "Session not found"}})
            return

        if isinstance(msg, dict) and "id" not in msg:  # notification (or a response)
            self._record(body=msg, status=202)
            self._send(202)
            return

        rid = msg.get("id")
        params = msg.get("params") or {}
        headers = {}
        if method == "initialize":
            sid = secrets.token_hex(16)
            with self.state.lock:
                self.state.sessions.add(sid)
            headers["Mcp-Session-Id"] = sid
            result = {
                "protocolVersion": params.get("protocolVersion"),
                "capabilities": {"tools": {}},
                "serverInfo": SERVER_INFO,
            }
            reply = {"jsonrpc": "2.0", "id": rid, "result": result}
        elif method == "tools/list":
            reply = {"jsonrpc": "2.0", "id": rid, "result": {"tools": [ECHO_TOOL]}}
        elif method == "tools/call" and params.get("name") == "echo":
            text = json.dumps(params.get("arguments") or {}, sort_keys=True)
            reply = {"jsonrpc": "2.0", "id": rid,
                     "result": {"content": [{"type": "text", "text": text}], "isError": False}}
        else:
            reply = {"jsonrpc": "2.0", "id": rid,
                     "error": {"code": -32601, "message": f"Method not found: {method}"}}
        self._record(body=msg, status=200)
        self._send(200, reply, headers)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--log", required=True, help="JSON-lines record of every request")
    ap.add_argument("--lifetime", type=float, default=300.0, help="stop after this many seconds")
    args = ap.parse_args()

    Handler.state = State(args.log)
    open(args.log, "a").close()  # exists even if no request ever comes
    httpd = ThreadingHTTPServer((args.host, args.port), Handler)
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)  # atomic: the reader never sees a half-written file

    timer = threading.Timer(args.lifetime, httpd.shutdown)
    timer.daemon = True
    timer.start()
    try:
        httpd.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
