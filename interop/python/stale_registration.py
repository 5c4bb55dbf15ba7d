"""Sign-in recovery against a real peer: FastMCP's in-memory OAuth provider (A-STALE, A-REVOKE).

A user signs in, the server restarts and forgets the client the proxy registered, and the
user runs `check` again. The proxy must drop the dead registration, register again and sign
in once, never sending the browser to the forgotten client id. Then `logout` revokes.

Usage: stale_registration.py BIN   (prints "ok: ..." / "FAIL: ..." lines, then
"stale-registration: N passed, M failed")
"""

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(f"{'ok' if ok else 'FAIL'}: {name}" + ("" if ok else f"\n{detail}"), flush=True)


def start_server(port, log):
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "fastmcp_oauth_server.py"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        raise SystemExit(f"the FastMCP server did not start: {line!r}")
    port = int(line.split()[1])
    # Wait until it answers (a 401 is an answer).
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    return proc, port


def stop(proc):
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    bin_ = sys.argv[1]
    work = tempfile.mkdtemp(prefix="clerk-stale-")
    opened = os.path.join(work, "opened")
    # The "browser": follows the authorize redirect to the proxy's loopback callback, as a
    # user's click would (the provider approves at once).
    browser = os.path.join(work, "browser.py")
    with open(browser, "w") as f:
        f.write(
            f"#!{sys.executable}\n"
            "import sys, urllib.request\n"
            f"open({opened!r}, 'a').write(sys.argv[1] + '\\n')\n"
            "urllib.request.urlopen(sys.argv[1], timeout=30).read()\n"
        )
    os.chmod(browser, 0o755)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": work, "BROWSER": browser}
    config = os.path.join(work, "config")
    log = open(os.path.join(work, "server.log"), "a")

    def run(*args):
        return subprocess.run(
            [bin_, *args, "--config-dir", config], env=env, capture_output=True, text=True, timeout=120
        )

    def opened_urls():
        try:
            return open(opened).read().split()
        except FileNotFoundError:
            return []

    server, port = start_server(0, log)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        r = run("login", url)
        check("login signs in through the browser", r.returncode == 0 and len(opened_urls()) == 1, r.stderr)
        r = run("check", url)
        check("check uses the stored token", r.returncode == 0 and len(opened_urls()) == 1, r.stdout + r.stderr)
        first = opened_urls()[0]

        stop(server)
        server, _ = start_server(port, log)
        r = run("check", url)
        urls = opened_urls()
        check(
            "after the server forgot its clients, check registers again and signs in once",
            r.returncode == 0 and len(urls) == 2 and "registering again" in r.stderr,
            f"exit {r.returncode}, browser opened {len(urls)} times\n{r.stdout}{r.stderr}",
        )
        client_of = lambda u: [p for p in u.split("?", 1)[1].split("&") if p.startswith("client_id=")]
        check(
            "the browser never sees the forgotten client id",
            len(urls) == 2 and client_of(urls[0]) != client_of(urls[1]),
            f"{first}\n{urls[-1]}",
        )
        tokens_dir = os.path.join(config, "tokens")
        stored = [json.load(open(os.path.join(tokens_dir, f))) for f in os.listdir(tokens_dir) if f.endswith(".json")]
        access = stored[0]["tokens"]["access_token"]
        r = run("logout", url)
        said = r.stdout + r.stderr
        req = urllib.request.Request(
            url,
            data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
            headers={"Authorization": f"Bearer {access}", "Content-Type": "application/json",
                     "Accept": "application/json, text/event-stream"},
        )
        try:
            status = urllib.request.urlopen(req, timeout=10).status
        except urllib.error.HTTPError as e:
            status = e.code
        check(
            "logout revokes the tokens at the server (the old token now gets 401)",
            r.returncode == 0 and "revoked" in said.lower() and "failed" not in said and status == 401,
            f"HTTP {status} for the old token\n{said}",
        )
    finally:
        stop(server)
    passed = sum(results)
    print(f"stale-registration: {passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
