#!/usr/bin/env node
// A stand-in "browser" for OAuth tests: the proxy under test runs `$BROWSER <authorization URL>`.
//
//   follow-browser.mjs URL
//
// GETs URL and follows redirects by hand (301/302/303/307/308, relative Location resolved
// against the current URL, at most 10 redirects followed), all the way to the proxy's loopback callback
// (http://127.0.0.1:PORT/callback?code=...&state=...). Every URL must be http: or https:.
// Logs each hop and the final status to stderr (and appends them to $FOLLOW_BROWSER_LOG if
// set: useful when the opener detaches the browser from the proxy's stderr, as mcp-remote's
// does). Exit 0 if the final response is 2xx, 1 otherwise, 2 on bad usage.
// FOLLOW_BROWSER_CONNECT_RETRY_MS=N (default 0): keep retrying a hop whose connection is
// refused for up to N ms. Off by default: a proxy must listen on its callback port before it
// runs $BROWSER. (mcp-remote-proxy.sh turns it on: mcp-remote starts its listener afterwards.)
import { appendFileSync } from "node:fs";

const MAX_HOPS = 10;
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const HOP_TIMEOUT_MS = Number(process.env.FOLLOW_BROWSER_TIMEOUT_MS ?? 15000);
const CONNECT_RETRY_MS = Number(process.env.FOLLOW_BROWSER_CONNECT_RETRY_MS ?? 0);

function log(msg) {
  const line = `[follow-browser] ${msg}\n`;
  process.stderr.write(line);
  if (process.env.FOLLOW_BROWSER_LOG) {
    try {
      appendFileSync(process.env.FOLLOW_BROWSER_LOG, `${new Date().toISOString()} ${line}`);
    } catch {}
  }
}

function httpUrl(s, base) {
  let u;
  try {
    u = base === undefined ? new URL(s) : new URL(s, base);
  } catch {
    return null;
  }
  return u.protocol === "http:" || u.protocol === "https:" ? u : null;
}

// Hide the code/state values in logs; the parameter names are what matters when debugging.
function redact(u) {
  const c = new URL(u);
  for (const k of ["code", "state", "code_challenge"]) {
    if (c.searchParams.has(k)) c.searchParams.set(k, "redacted");
  }
  return c.toString();
}

async function main() {
  if (process.argv.length !== 3) {
    log("usage: follow-browser.mjs URL");
    return 2;
  }
  let url = httpUrl(process.argv[2]);
  if (!url) {
    log(`refusing a URL that is not an absolute http(s) URL: ${process.argv[2]}`);
    return 2;
  }
  for (let hop = 0; ; hop++) {
    let res;
    const retryUntil = Date.now() + CONNECT_RETRY_MS;
    for (;;) {
      try {
        res = await fetch(url, {
          method: "GET",
          redirect: "manual",
          headers: { accept: "text/html,application/json;q=0.9,*/*;q=0.8" },
          signal: AbortSignal.timeout(HOP_TIMEOUT_MS),
        });
        break;
      } catch (e) {
        const refused = e?.cause?.code === "ECONNREFUSED";
        if (refused && Date.now() < retryUntil) {
          await new Promise((r) => setTimeout(r, 100));
          continue;
        }
        log(`GET ${redact(url)} failed: ${e?.cause?.message ?? e?.message ?? e}`);
        return 1;
      }
    }
    // Drain the body so keep-alive sockets don't hold the process open.
    const body = await res.text().catch(() => "");
    log(`GET ${redact(url)} -> ${res.status}`);
    if (!REDIRECTS.has(res.status)) {
      const ok = res.status >= 200 && res.status < 300;
      log(`final status ${res.status}${ok ? "" : `: ${body.slice(0, 500)}`}`);
      return ok ? 0 : 1;
    }
    const location = res.headers.get("location");
    if (!location) {
      log(`final status ${res.status}: redirect without a Location header`);
      return 1;
    }
    if (hop >= MAX_HOPS) {
      log(`final status ${res.status}: more than ${MAX_HOPS} redirects`);
      return 1;
    }
    const next = httpUrl(location, url);
    if (!next) {
      log(`final status ${res.status}: refusing to follow a redirect to a non-http(s) URL: ${location}`);
      return 1;
    }
    url = next;
  }
}

process.exitCode = await main();
