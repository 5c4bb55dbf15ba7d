"""A FastMCP server with FastMCP's in-memory OAuth provider, for the stale-registration check.

The provider keeps registered clients and tokens in memory only, so restarting this process
is exactly the case users hit: the authorization server forgets the client the proxy
registered. Authorization is approved at once (the provider's own behaviour).

Usage: fastmcp_oauth_server.py --port N   (0 picks a free port; "PORT <n>" is printed first)
"""

import argparse
import asyncio
import socket
import sys

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider
from mcp.server.auth.settings import ClientRegistrationOptions, RevocationOptions


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A restart binds the port its predecessor had (the proxy's tokens name that URL).
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    auth = InMemoryOAuthProvider(
        base_url=base,
        client_registration_options=ClientRegistrationOptions(enabled=True),
        revocation_options=RevocationOptions(enabled=True),
    )
    mcp = FastMCP("fastmcp-oauth", auth=auth)

    @mcp.tool
    def echo(text: str) -> str:
        """Echo the text back."""
        return text

    app = mcp.http_app(path="/mcp")
    print(f"PORT {port}", flush=True)
    config = uvicorn.Config(app, log_level="warning")
    asyncio.run(uvicorn.Server(config).serve(sockets=[sock]))


if __name__ == "__main__":
    sys.exit(main())
