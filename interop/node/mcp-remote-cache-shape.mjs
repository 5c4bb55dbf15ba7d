#!/usr/bin/env node
// Checks that tests/fixtures/mcp-remote-v1/{client_info,tokens}.json have the shape the real
// mcp-remote 0.15.1 writes to its cache after a browser sign-in with dynamic client registration.
//
//   mcp-remote-cache-shape.mjs [--fixtures DIR]      (default DIR: <repo>/tests/fixtures/mcp-remote-v1)
//
// In-process fake on 127.0.0.1:0 (plain node:http): protected resource metadata, AS metadata,
// /register (DCR: echoes the request plus client_id and client_id_issued_at), /authorize (302
// straight back to the redirect_uri with code and state), /token (PKCE-checked; access_token,
// id_token, token_type, expires_in, scope, refresh_token) and a Streamable HTTP MCP endpoint
// /mcp (401 + WWW-Authenticate: Bearer resource_metadata=... without the issued bearer).
// Runs node_modules/mcp-remote/dist/proxy.js <url> with MCP_REMOTE_CONFIG_DIR (and HOME) in a
// temp dir and a stand-in browser (follow-browser.mjs) as $BROWSER, which the `open` package's
// xdg-open runs when there is no desktop, and as xdg-open/x-www-browser/www-browser first in
// PATH; sends `initialize` on stdin, waits for the reply, closes stdin. Then compares the
// <hash>_client_info.json and <hash>_tokens.json it wrote with the fixture:
//   * file names <32 lowercase hex>_client_info.json / _tokens.json, the hash being MD5 of the
//     server URL exactly as passed (and the callback port the one derived from that hash);
//   * file mode 0600;
//   * formatting: both the written file and the fixture are exactly JSON.stringify(v, null, 2)
//     (2-space indent, arrays one element per line, no trailing newline);
//   * the same keys in the same order, the same JSON value types (arrays: element types);
//   * values, once the fixture's {{ISSUER}} and {{PORT}} are filled in from the run, for every
//     key mcp-remote or the server's configuration decides; the server-issued values
//     (client_id, client_id_issued_at, access_token, id_token, refresh_token, expires_at) are
//     checked by type only (expires_at: absolute ms epoch, about now + expires_in s).
// Prints one "PASS mcp-remote-cache-shape ..." line, or "FAIL mcp-remote-cache-shape: ..." and
// one line per difference followed by mcp-remote's stderr, the browser log and the fake
// server's request log; exit 0 on PASS, 1 on FAIL, 2 on bad usage. Bounded to 60 s overall.
// Env: INTEROP_VERBOSE=1 (also print the logs on PASS), INTEROP_KEEP_RESULTS=1 (keep the temp dir).
import { spawn } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const NAME = "mcp-remote-cache-shape";
const OVERALL_MS = 55_000; // under the 60 s budget, leaving time to print and clean up
const INIT_REPLY_MS = 45_000;
const EXIT_MS = 5_000;
const SCOPES = ["mcp.read", "mcp.write"];

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "..", "..");
let fixtureDir = path.join(repo, "tests", "fixtures", "mcp-remote-v1");
// --import BIN: once the shapes match, start our binary against the same server and
// cache, and require it to import mcp-remote's sign-in instead of signing in again.
let ourBin = null;
{
  const a = process.argv.slice(2);
  while (a.length >= 2 && (a[0] === "--fixtures" || a[0] === "--import")) {
    const [flag, value] = a.splice(0, 2);
    if (flag === "--fixtures") fixtureDir = path.resolve(value);
    else ourBin = path.resolve(value);
  }
  if (a.length !== 0) {
    console.error("usage: mcp-remote-cache-shape.mjs [--fixtures DIR] [--import BIN]");
    process.exit(2);
  }
}
const proxyJs = path.join(here, "node_modules", "mcp-remote", "dist", "proxy.js");
const browserJs = path.join(here, "follow-browser.mjs");
const verbose = process.env.INTEROP_VERBOSE === "1";

const tmp = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), "clerk-mcp-remote-cache-shape."));
const configRoot = path.join(tmp, "config");
const cacheDir = path.join(configRoot, "mcp-remote-v1");
const stderrLog = path.join(tmp, "mcp-remote.stderr.log");
const browserLog = path.join(tmp, "browser.log");
const serverLog = [];
let child = null;
let server = null;
let finished = false;

function killChild() {
  if (child && child.exitCode === null && child.signalCode === null) {
    try {
      child.kill("SIGKILL");
    } catch {}
  }
}
process.on("exit", killChild);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => finish([`interrupted by ${sig}`]));
}

function readOr(file, dflt) {
  try {
    return fs.readFileSync(file, "utf8");
  } catch {
    return dflt;
  }
}

function dumpLogs() {
  const tail = (s) => (s.length > 20_000 ? `...(truncated)\n${s.slice(-20_000)}` : s);
  process.stdout.write(`---- mcp-remote stderr ----\n${tail(readOr(stderrLog, "(none)\n"))}`);
  process.stdout.write(`\n---- browser log ----\n${readOr(browserLog, "(empty: the browser never ran)\n")}`);
  process.stdout.write(`---- fake server requests ----\n${serverLog.join("\n")}\n---- end ----\n`);
}

/** Ends the run: PASS if `problems` is empty, else FAIL with one line per problem. */
function finish(problems, passDetail = "") {
  if (finished) return;
  finished = true;
  killChild();
  server?.closeAllConnections?.();
  server?.close();
  if (problems.length === 0) {
    if (verbose) dumpLogs();
    console.log(`PASS ${NAME}: ${passDetail}`);
  } else {
    console.log(`FAIL ${NAME}: ${problems.length} difference(s) or error(s) (fixture ${fixtureDir})`);
    for (const p of problems) console.log(`  - ${p}`);
    dumpLogs();
  }
  const keep = problems.length > 0 || process.env.INTEROP_KEEP_RESULTS === "1";
  if (keep) console.log(`${NAME}: temp dir kept: ${tmp}`);
  else fs.rmSync(tmp, { recursive: true, force: true });
  process.exit(problems.length === 0 ? 0 : 1);
}

const deadline = setTimeout(() => finish([`timed out after ${OVERALL_MS / 1000} s`]), OVERALL_MS);
deadline.unref();

// ---------------------------------------------------------------------------------------------
// Fake authorization server + MCP server.

const b64url = (b) => Buffer.from(b).toString("base64url");
const unsignedJwt = (claims) => `${b64url(JSON.stringify({ alg: "none" }))}.${b64url(JSON.stringify(claims))}.`;

const clients = new Map(); // client_id -> registered metadata
const codes = new Map(); // code -> { clientId, redirectUri, challenge }
const accessTokens = new Set();
let base = ""; // http://127.0.0.1:PORT
let serverUrl = ""; // base + "/mcp", passed to mcp-remote verbatim
let issued = 0;

function send(res, status, body, headers = {}) {
  const isJson = body !== undefined && typeof body !== "string";
  const text = body === undefined ? "" : isJson ? JSON.stringify(body) : body;
  res.writeHead(status, {
    ...(body !== undefined ? { "content-type": isJson ? "application/json" : "text/plain" } : {}),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let n = 0;
    req.on("data", (c) => {
      n += c.length;
      if (n > 1_000_000) reject(new Error("body too large"));
      else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function prm() {
  return {
    resource: serverUrl,
    authorization_servers: [base],
    scopes_supported: SCOPES,
    bearer_methods_supported: ["header"],
  };
}

function asMetadata() {
  return {
    issuer: base,
    authorization_endpoint: `${base}/authorize`,
    token_endpoint: `${base}/token`,
    registration_endpoint: `${base}/register`,
    response_types_supported: ["code"],
    grant_types_supported: ["authorization_code", "refresh_token"],
    code_challenge_methods_supported: ["S256"],
    token_endpoint_auth_methods_supported: ["none"],
    scopes_supported: SCOPES,
  };
}

function issueTokens(scope) {
  issued += 1;
  const at = `shape-at-${issued}-${crypto.randomBytes(8).toString("hex")}`;
  accessTokens.add(at);
  const now = Math.floor(Date.now() / 1000);
  // The field set the SDK's OAuthTokensSchema keeps, in a real AS's usual order.
  return {
    access_token: at,
    id_token: unsignedJwt({ iss: base, sub: "shape-user", aud: "shape", iat: now, exp: now + 3600 }),
    token_type: "Bearer",
    expires_in: 3600,
    scope,
    refresh_token: `shape-rt-${issued}-${crypto.randomBytes(8).toString("hex")}`,
  };
}

async function handleToken(req, res) {
  const form = new URLSearchParams(await readBody(req));
  const err = (error, description) => send(res, 400, { error, error_description: description });
  const grant = form.get("grant_type");
  if (grant === "authorization_code") {
    const entry = codes.get(form.get("code") ?? "");
    if (!entry) return err("invalid_grant", "unknown or used code");
    codes.delete(form.get("code"));
    if (form.get("client_id") !== entry.clientId) return err("invalid_client", "client_id mismatch");
    if (form.get("redirect_uri") !== entry.redirectUri) return err("invalid_grant", "redirect_uri mismatch");
    const verifier = form.get("code_verifier") ?? "";
    const challenge = b64url(crypto.createHash("sha256").update(verifier).digest());
    if (challenge !== entry.challenge) return err("invalid_grant", "PKCE verification failed");
    return send(res, 200, issueTokens(entry.scope));
  }
  if (grant === "refresh_token") {
    return send(res, 200, issueTokens(SCOPES.join(" ")));
  }
  return err("unsupported_grant_type", `grant_type ${grant}`);
}

async function handleRegister(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    return send(res, 400, { error: "invalid_client_metadata", error_description: "body is not JSON" });
  }
  if (!Array.isArray(body.redirect_uris) || body.redirect_uris.length === 0) {
    return send(res, 400, { error: "invalid_redirect_uri", error_description: "redirect_uris required" });
  }
  const clientId = `shape-client-${crypto.randomBytes(6).toString("hex")}`;
  // As a real AS does: the registered metadata echoed back, plus the issued identifiers.
  const registered = { ...body, client_id: clientId, client_id_issued_at: Math.floor(Date.now() / 1000) };
  clients.set(clientId, registered);
  return send(res, 201, registered);
}

let authorizeCount = 0;
function handleAuthorize(url, res) {
  authorizeCount += 1;
  const q = url.searchParams;
  const client = clients.get(q.get("client_id") ?? "");
  const redirectUri = q.get("redirect_uri") ?? "";
  if (!client) return send(res, 400, { error: "invalid_client", error_description: "unknown client_id" });
  if (!client.redirect_uris.includes(redirectUri)) {
    return send(res, 400, { error: "invalid_request", error_description: "redirect_uri not registered" });
  }
  if (q.get("response_type") !== "code" || q.get("code_challenge_method") !== "S256" || !q.get("code_challenge")) {
    return send(res, 400, { error: "invalid_request", error_description: "need response_type=code and S256 PKCE" });
  }
  const code = crypto.randomBytes(16).toString("hex");
  codes.set(code, {
    clientId: client.client_id,
    redirectUri,
    challenge: q.get("code_challenge"),
    scope: q.get("scope") ?? SCOPES.join(" "),
  });
  const to = new URL(redirectUri);
  to.searchParams.set("code", code);
  if (q.has("state")) to.searchParams.set("state", q.get("state"));
  return send(res, 302, undefined, { location: to.toString() });
}

async function handleMcp(req, res) {
  const auth = req.headers.authorization ?? "";
  const m = /^Bearer (.+)$/i.exec(auth);
  if (!m || !accessTokens.has(m[1])) {
    return send(res, 401, { error: "invalid_token" }, {
      "www-authenticate": `Bearer resource_metadata="${base}/.well-known/oauth-protected-resource/mcp"`,
    });
  }
  if (req.method !== "POST") return send(res, 405, undefined, { allow: "POST" });
  let msg;
  try {
    msg = JSON.parse(await readBody(req));
  } catch {
    return send(res, 400, { jsonrpc: "2.0", id: null, error: { code: -32700, message: "Parse error" } });
  }
  const one = (m) => {
    if (m.id === undefined || m.id === null) return null; // notification or response
    switch (m.method) {
      case "initialize":
        return {
          jsonrpc: "2.0",
          id: m.id,
          result: {
            protocolVersion: m.params?.protocolVersion ?? "2025-06-18",
            capabilities: { tools: {} },
            serverInfo: { name: "cache-shape-fake", version: "1.0.0" },
          },
        };
      case "tools/list":
        return { jsonrpc: "2.0", id: m.id, result: { tools: [] } };
      case "ping":
        return { jsonrpc: "2.0", id: m.id, result: {} };
      default:
        return { jsonrpc: "2.0", id: m.id, error: { code: -32601, message: `Method not found: ${m.method}` } };
    }
  };
  if (Array.isArray(msg)) {
    const out = msg.map(one).filter(Boolean);
    return out.length ? send(res, 200, out) : send(res, 202, undefined);
  }
  const out = one(msg);
  return out ? send(res, 200, out) : send(res, 202, undefined);
}

async function route(req, res) {
  const url = new URL(req.url, base);
  const p = url.pathname;
  if (req.method === "GET" && (p === "/.well-known/oauth-protected-resource/mcp" || p === "/.well-known/oauth-protected-resource")) {
    return send(res, 200, prm());
  }
  if (req.method === "GET" && p === "/.well-known/oauth-authorization-server") return send(res, 200, asMetadata());
  if (req.method === "POST" && p === "/register") return handleRegister(req, res);
  if (req.method === "GET" && p === "/authorize") return handleAuthorize(url, res);
  if (req.method === "POST" && p === "/token") return handleToken(req, res);
  if (p === "/mcp") return handleMcp(req, res);
  return send(res, 404, { error: "not_found" });
}

server = http.createServer((req, res) => {
  res.on("finish", () => {
    serverLog.push(`${req.method} ${req.url.replace(/(code|state|code_challenge)=[^&]*/g, "$1=…")} -> ${res.statusCode}`);
  });
  route(req, res).catch((e) => {
    serverLog.push(`${req.method} ${req.url}: handler error ${e?.stack ?? e}`);
    if (!res.headersSent) send(res, 500, { error: "server_error" });
    else res.destroy();
  });
});
await new Promise((resolve, reject) => {
  server.once("error", reject);
  server.listen(0, "127.0.0.1", resolve);
});
base = `http://127.0.0.1:${server.address().port}`;
serverUrl = `${base}/mcp`;

// ---------------------------------------------------------------------------------------------
// Run the real mcp-remote.

for (const f of [proxyJs, browserJs]) {
  if (!fs.existsSync(f)) finish([`missing ${f} (run npm ci in ${here})`]);
}
const fakeBin = path.join(tmp, "bin");
fs.mkdirSync(fakeBin);
const shim = `#!/bin/sh\nexec "${process.execPath}" "${browserJs}" "$1"\n`;
for (const name of ["xdg-open", "x-www-browser", "www-browser"]) {
  fs.writeFileSync(path.join(fakeBin, name), shim, { mode: 0o755 });
}
const env = { ...process.env };
// No desktop: the `open` package's xdg-open must take its generic path ($BROWSER), never a real browser.
for (const k of ["DISPLAY", "WAYLAND_DISPLAY", "XDG_CURRENT_DESKTOP", "DESKTOP_SESSION", "KDE_FULL_SESSION",
  "GNOME_DESKTOP_SESSION_ID", "DBUS_SESSION_BUS_ADDRESS", "MCP_REMOTE_CONFIG_DIR"]) delete env[k];
Object.assign(env, {
  HOME: tmp,
  MCP_REMOTE_CONFIG_DIR: configRoot,
  BROWSER: path.join(fakeBin, "xdg-open"),
  PATH: `${fakeBin}${path.delimiter}${path.dirname(process.execPath)}${path.delimiter}${process.env.PATH ?? ""}`,
  FOLLOW_BROWSER_LOG: browserLog,
  FOLLOW_BROWSER_CONNECT_RETRY_MS: "10000",
  FOLLOW_BROWSER_TIMEOUT_MS: "10000",
});
const errFd = fs.openSync(stderrLog, "w");
child = spawn(process.execPath, [proxyJs, serverUrl], { env, cwd: tmp, stdio: ["pipe", "pipe", errFd] });
fs.closeSync(errFd);
const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
child.once("error", (e) => finish([`could not start mcp-remote: ${e.message}`]));
child.stdin.on("error", () => {}); // EPIPE if it dies early: reported through the exit below

const stdoutLines = [];
const initReply = new Promise((resolve) => {
  let buf = "";
  child.stdout.on("data", (chunk) => {
    buf += chunk.toString("utf8");
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      stdoutLines.push(line);
      try {
        const msg = JSON.parse(line);
        if (msg.id === 1 && ("result" in msg || "error" in msg)) resolve(msg);
      } catch {}
    }
  });
});
child.stdin.write(`${JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "cache-shape-check", version: "1.0.0" },
  },
})}\n`);

const timer = (ms, v) => new Promise((r) => setTimeout(() => r(v), ms).unref());
const first = await Promise.race([
  initReply.then((msg) => ({ msg })),
  exited.then((x) => ({ exit: x })),
  timer(INIT_REPLY_MS, { timeout: true }),
]);
const runProblems = [];
if (first.timeout) runProblems.push(`no reply to initialize within ${INIT_REPLY_MS / 1000} s`);
else if (first.exit) runProblems.push(`mcp-remote exited (code ${first.exit.code}, signal ${first.exit.signal}) before replying to initialize`);
else if (first.msg.error) runProblems.push(`initialize failed: ${JSON.stringify(first.msg.error)}`);
else if (first.msg.result?.serverInfo?.name !== "cache-shape-fake") {
  runProblems.push(`unexpected initialize reply: ${JSON.stringify(first.msg).slice(0, 300)}`);
}
child.stdin.end();
const ended = await Promise.race([exited, timer(EXIT_MS, null)]);
if (!ended) runProblems.push(`mcp-remote did not exit within ${EXIT_MS / 1000} s of stdin closing (killed)`);
killChild();
if (runProblems.length) finish(runProblems);

// ---------------------------------------------------------------------------------------------
// Compare.

const problems = [];
const md5 = crypto.createHash("md5").update(serverUrl).digest("hex");

function typeOf(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return `array<${[...new Set(v.map(typeOf))].join("|") || "empty"}>`;
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}
const canonical = (v) => JSON.stringify(v, null, 2);
const show = (s) => JSON.stringify(s.length > 60 ? `${s.slice(0, 60)}…` : s);

let entries;
try {
  entries = fs.readdirSync(cacheDir);
} catch (e) {
  finish([`mcp-remote wrote no cache dir ${cacheDir}: ${e.code ?? e.message}`]);
}
const realFiles = {};
for (const suffix of ["client_info", "tokens"]) {
  const matches = entries.filter((e) => e.endsWith(`_${suffix}.json`));
  if (matches.length !== 1) {
    problems.push(`expected one *_${suffix}.json in the cache dir, found ${matches.length} (dir: ${entries.join(", ") || "empty"})`);
    continue;
  }
  const name = matches[0];
  const m = /^([0-9a-f]{32})_/.exec(name);
  if (!m) problems.push(`${name}: the name is not <32 lowercase hex>_${suffix}.json`);
  else if (m[1] !== md5) problems.push(`${name}: hash ${m[1]} is not MD5 of the server URL ${JSON.stringify(serverUrl)} (${md5})`);
  const st = fs.statSync(path.join(cacheDir, name));
  const mode = st.mode & 0o777;
  if (mode !== 0o600) problems.push(`${name}: mode ${mode.toString(8).padStart(4, "0")}, expected 0600`);
  realFiles[suffix] = { name, text: fs.readFileSync(path.join(cacheDir, name), "utf8") };
}

// The callback port mcp-remote derives from the hash (it walks up to 7 ports further if busy).
const derivedPort = 3335 + (parseInt(md5.slice(0, 4), 16) % 45816);

const SERVER_ISSUED = {
  client_info: new Set(["client_id", "client_id_issued_at"]),
  tokens: new Set(["access_token", "id_token", "refresh_token", "expires_at"]),
};

for (const suffix of ["client_info", "tokens"]) {
  const fixtureFile = path.join(fixtureDir, `${suffix}.json`);
  const label = `${suffix}.json`;
  const fixtureText = readOr(fixtureFile, null);
  if (fixtureText === null) {
    problems.push(`${label}: cannot read the fixture ${fixtureFile}`);
    continue;
  }
  let fixture;
  try {
    fixture = JSON.parse(fixtureText);
  } catch (e) {
    problems.push(`${label}: the fixture is not JSON: ${e.message}`);
    continue;
  }
  if (fixtureText !== canonical(fixture)) {
    problems.push(`${label}: the fixture is not formatted as JSON.stringify(v, null, 2) (2-space indent, one array element per line, no trailing newline)`);
  }
  const real = realFiles[suffix];
  if (!real) continue;
  let written;
  try {
    written = JSON.parse(real.text);
  } catch (e) {
    problems.push(`${real.name}: mcp-remote wrote invalid JSON: ${e.message}`);
    continue;
  }
  if (real.text !== canonical(written)) {
    problems.push(`${real.name}: not formatted as JSON.stringify(v, null, 2): the check's formatting rule is out of date`);
  }
  if (typeOf(fixture) !== "object" || typeOf(written) !== "object") {
    problems.push(`${label}: top level is ${typeOf(fixture)} in the fixture, ${typeOf(written)} in mcp-remote's file`);
    continue;
  }
  const fk = Object.keys(fixture);
  const wk = Object.keys(written);
  for (const k of wk) if (!fk.includes(k)) problems.push(`${label}: key "${k}" is missing from the fixture (mcp-remote writes it)`);
  for (const k of fk) if (!wk.includes(k)) problems.push(`${label}: key "${k}" is in the fixture but mcp-remote does not write it`);
  const common = (keys, other) => keys.filter((k) => other.includes(k));
  const fo = common(fk, wk);
  const wo = common(wk, fk);
  if (fo.join(",") !== wo.join(",")) {
    problems.push(`${label}: key order differs: fixture [${fo.join(", ")}], mcp-remote [${wo.join(", ")}]`);
  }
  // Placeholders, filled in from this run.
  const issuer = written.issuer;
  for (const k of fo) {
    const tf = typeOf(fixture[k]);
    const tw = typeOf(written[k]);
    if (tf !== tw) {
      problems.push(`${label}: "${k}" is ${tf} in the fixture, ${tw} in mcp-remote's file`);
      continue;
    }
    if (SERVER_ISSUED[suffix].has(k)) continue;
    let want = fixture[k];
    let got = written[k];
    if (k === "redirect_uris") {
      // Fill {{PORT}} with the port mcp-remote actually used, which must be the derived one (+0..7).
      const ports = [];
      const ok = want.length === got.length && want.every((w, i) => {
        const esc = w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replaceAll("\\{\\{PORT\\}\\}", "(\\d+)");
        const pm = new RegExp(`^${esc}$`).exec(got[i]);
        if (pm && pm[1]) ports.push(Number(pm[1]));
        return pm !== null;
      });
      if (!ok) {
        problems.push(`${label}: "redirect_uris" ${JSON.stringify(got)} does not match the fixture's ${JSON.stringify(want)}`);
      }
      for (const port of ports) {
        if (port < derivedPort || port > derivedPort + 7) {
          problems.push(`${label}: callback port ${port} is not the one derived from the hash (${derivedPort}..${derivedPort + 7})`);
        }
      }
      continue;
    }
    want = JSON.parse(JSON.stringify(want).replaceAll("{{ISSUER}}", String(issuer)));
    if (JSON.stringify(want) !== JSON.stringify(got)) {
      problems.push(`${label}: "${k}" is ${show(JSON.stringify(want))} in the fixture (placeholders filled), ${show(JSON.stringify(got))} in mcp-remote's file`);
    }
  }
  if (suffix === "tokens" && typeof written.expires_at === "number" && typeof written.expires_in === "number") {
    const expect = Date.now() + written.expires_in * 1000;
    if (Math.abs(written.expires_at - expect) > 120_000) {
      problems.push(`${label}: expires_at ${written.expires_at} is not about now + expires_in s in ms (${expect})`);
    }
  }
  if (suffix === "tokens" && typeof fixture.id_token === "string" && !/^[\w-]+\.[\w-]+\.[\w-]*$/.test(fixture.id_token)) {
    problems.push(`${label}: the fixture's id_token is not a JWT`);
  }
}
if (realFiles.client_info && realFiles.tokens) {
  try {
    if (JSON.parse(realFiles.tokens.text).issuer !== base) {
      problems.push(`tokens.json: mcp-remote stamped issuer ${JSON.parse(realFiles.tokens.text).issuer}, the AS issuer is ${base}`);
    }
  } catch {}
}

if (ourBin && problems.length === 0) problems.push(...(await importCheck()));

// Our binary, started on mcp-remote's cache: it must import the sign-in (no browser, no new
// authorization), say so once on stderr, and leave mcp-remote's files as they were.
async function importCheck() {
  const out = [];
  const before = fs.readdirSync(cacheDir).sort().map((f) => [f, fs.readFileSync(path.join(cacheDir, f), "utf8")]);
  const authorizedBefore = authorizeCount;
  const opened = path.join(tmp, "ours-browser-opened");
  const noBrowser = path.join(tmp, "no-browser.sh");
  fs.writeFileSync(noBrowser, `#!/bin/sh\necho "$1" >> '${opened}'\nexit 1\n`, { mode: 0o755 });
  const ours = spawn(ourBin, [serverUrl, "--config-dir", path.join(tmp, "ours")], {
    env: { HOME: tmp, MCP_REMOTE_CONFIG_DIR: configRoot, BROWSER: noBrowser, PATH: process.env.PATH ?? "" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  ours.stderr.on("data", (c) => { stderr += c.toString("utf8"); });
  const oursExited = new Promise((resolve) => ours.once("exit", (code) => resolve({ code })));
  const reply = new Promise((resolve) => {
    let buf = "";
    ours.stdout.on("data", (chunk) => {
      buf += chunk.toString("utf8");
      for (let i; (i = buf.indexOf("\n")) >= 0; ) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          const msg = JSON.parse(line);
          if (msg.id === 2) resolve(msg);
        } catch {}
      }
    });
  });
  ours.stdin.on("error", () => {});
  ours.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: {
    protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "import-check", version: "1" } } })}\n`);
  ours.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", method: "notifications/initialized" })}\n`);
  ours.stdin.write(`${JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" })}\n`);
  const got = await Promise.race([reply.then((msg) => ({ msg })), oursExited.then((x) => ({ exit: x })), timer(15_000, { timeout: true })]);
  ours.stdin.end();
  const ended = await Promise.race([oursExited, timer(EXIT_MS, null)]);
  if (!ended) ours.kill("SIGKILL");
  if (got.timeout) out.push("clerk-mcp-server: no answer to tools/list within 15 s");
  else if (got.exit) out.push(`clerk-mcp-server exited (code ${got.exit.code}) before answering tools/list`);
  else if (!got.msg.result) out.push(`clerk-mcp-server: tools/list failed: ${JSON.stringify(got.msg).slice(0, 300)}`);
  if ((stderr.match(/imported mcp-remote's sign-in/g) ?? []).length !== 1) out.push("clerk-mcp-server did not say once that it imported mcp-remote's sign-in");
  if (authorizeCount !== authorizedBefore || fs.existsSync(opened)) out.push("clerk-mcp-server signed in again instead of importing");
  const after = fs.readdirSync(cacheDir).sort().map((f) => [f, fs.readFileSync(path.join(cacheDir, f), "utf8")]);
  if (JSON.stringify(before) !== JSON.stringify(after)) out.push("clerk-mcp-server changed mcp-remote's cache files");
  if (out.length) out.push(`clerk-mcp-server's stderr:\n${stderr}`);
  return out;
}

finish(problems, `${realFiles.client_info?.name ?? "?"} and ${realFiles.tokens?.name ?? "?"} (MD5 of ${serverUrl}) match ${path.relative(repo, fixtureDir) || fixtureDir}: keys, order, types, 2-space format, mode 0600${ourBin ? "; clerk-mcp-server imported the sign-in" : ""}`);
