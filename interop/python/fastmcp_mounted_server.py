"""A FastMCP server mounted inside a Starlette app at /mcp, for the redirect-mount check.

`Mount("/mcp", app=mcp.http_app(path="/"))` serves the MCP endpoint at `/mcp/`; a request
to `/mcp` (no trailing slash) is answered by Starlette's router with a 307 redirect to
`/mcp/`. That is how many real deployments look, and users put the URL without the slash in
their config.

Usage: fastmcp_mounted_server.py [--port N] [--log FILE]
  --port 0 (the default) binds a free port; "PORT <n>" is printed first.
  --log FILE appends one JSON line per HTTP request: {"method", "path", "status"}.
"""

import argparse
import asyncio
import json
import socket
import sys

import uvicorn
from fastmcp import FastMCP
from starlette.applications import Starlette
from starlette.routing import Mount


def request_log(app, path):
    """ASGI middleware: record each HTTP request's method, path and response status."""

    async def wrapped(scope, receive, send):
        if scope["type"] != "http":
            return await app(scope, receive, send)
        status = {}

        async def send_(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                with open(path, "a") as f:
                    f.write(json.dumps({"method": scope["method"], "path": scope["path"],
                                        "status": message["status"]}) + "\n")
            await send(message)

        await app(scope, receive, send_)

    return wrapped


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", default=None)
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]

    mcp = FastMCP("fastmcp-mounted")

    @mcp.tool
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    @mcp.tool
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    mcp_app = mcp.http_app(path="/")
    # The mounted app's lifespan starts FastMCP's session manager; Mount does not run it.
    app = Starlette(routes=[Mount("/mcp", app=mcp_app)], lifespan=mcp_app.lifespan)
    asgi = request_log(app, args.log) if args.log else app
    print(f"PORT {port}", flush=True)
    config = uvicorn.Config(asgi, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    sys.exit(main())
