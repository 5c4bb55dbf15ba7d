#!/usr/bin/env python3
"""A loopback stand-in for GitHub's releases API and downloads, for the installer rehearsal.

Usage: mock_github.py DIR  — serves DIR/v1 and DIR/v2 as release download folders
(/download/v1/<file>, /download/v2/<file>) and answers
/repos/clerk/mcp-server/releases/latest and /releases/tags/v<version> with the release
described by DIR/v2. Prints "PORT <n>" first. Set the file DIR/tamper to make the v2
archive download return altered bytes (its .sha256 stays the real one).
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
V2_VERSION = open(os.path.join(ROOT, "v2", "VERSION")).read().strip()


def release(port):
    folder = os.path.join(ROOT, "v2")
    assets = [
        {"name": f, "url": f"http://127.0.0.1:{port}/download/v2/{f}"}
        for f in sorted(os.listdir(folder))
        if f != "VERSION" and os.path.isfile(os.path.join(folder, f))
    ]
    return {
        "tag_name": f"v{V2_VERSION}",
        "name": f"v{V2_VERSION}",
        "created_at": "2026-11-30T00:00:00Z",
        "body": "rehearsal release",
        "html_url": f"http://127.0.0.1:{port}/release",
        "assets": assets,
    }


class Handler(BaseHTTPRequestHandler):
    def log_message(self, fmt, *args):
        sys.stderr.write("mock-github: " + fmt % args + "\n")

    def send(self, code, body, ctype="application/json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        port = self.server.server_address[1]
        path = self.path.split("?")[0]
        if path in ("/repos/clerk/mcp-server/releases/latest",
                    f"/repos/clerk/mcp-server/releases/tags/v{V2_VERSION}"):
            return self.send(200, json.dumps(release(port)).encode())
        if path == "/repos/clerk/mcp-server/releases":
            return self.send(200, json.dumps([release(port)]).encode())
        if path.startswith("/download/"):
            rel = path[len("/download/"):]
            full = os.path.normpath(os.path.join(ROOT, rel))
            if not full.startswith(ROOT) or not os.path.isfile(full):
                return self.send(404, b"not found", "text/plain")
            data = open(full, "rb").read()
            if rel.startswith("v2/") and rel.endswith(".tar.xz") and os.path.exists(os.path.join(ROOT, "tamper")):
                data = data[:-64] + bytes(64)  # altered bytes, same length
            return self.send(200, data, "application/octet-stream")
        return self.send(404, b'{"message":"Not Found"}')


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
