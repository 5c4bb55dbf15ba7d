#!/usr/bin/env node
// Interop check: the real reference server restarts under a live proxy (H-404-400).
//
// Usage: CLERK_MCP_BIN=/path/to/proxy node session-restart.mjs
// Env: CLERK_MCP_ARGS (extra proxy args before the URL, space-separated),
//      INTEROP_VERBOSE=1 (also print the logs on PASS).
//
// 1. Starts @modelcontextprotocol/server-everything in `streamableHttp` mode on a free loopback
//    port (PORT env) and waits for its "listening on port" line.
// 2. Spawns the proxy (`$CLERK_MCP_BIN [CLERK_MCP_ARGS] URL`, CLERK_MCP_LOG_LEVEL=debug unless set)
//    under the official TypeScript SDK Client over StdioClientTransport: initialize, tools/list,
//    tools/call echo.
// 3. SIGKILLs the server, waits for it to exit, starts it again on the SAME port and waits for
//    it to listen. server-everything keeps its sessions in memory, so it now answers the old
//    session id with HTTP 400 {"code":-32000,"message":"Bad Request: No valid session ID
//    provided"}.
// 4. Two more tools/call echo through the same live proxy must both succeed with the right
//    text: the proxy has to notice the lost session, start a new one and retry the call. The
//    restarted server must log a new session.
// Prints the steps, then one "PASS session-restart: ..." or "FAIL session-restart: <step>: ..."
// line; on FAIL (or with INTEROP_VERBOSE=1) also the JSON-RPC trace, the proxy's stderr and both
// server runs' output. Exit 0 on PASS, 1 on FAIL. Every step has its own time limit and the
// whole run is bounded to 60 s; the server and the proxy are killed on exit.
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { assert, proxyCommand, textOf, tracedStdioTransport, withTimeout } from "./lib.mjs";

const NAME = "session-restart";
const OVERALL_MS = 60_000;
const VERBOSE = process.env.INTEROP_VERBOSE === "1";
const here = path.dirname(fileURLToPath(import.meta.url));
const entry = path.join(here, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
const LISTENING = /listening on port (\d+)/i;

const { bin, extra } = proxyCommand();
// Debug logs on the proxy's stderr (captured below); the env form, so that a wrapper such as
// mcp-remote-proxy.sh, which takes no --log-level, still runs.
process.env.CLERK_MCP_LOG_LEVEL ??= "debug";

let server = null; // the running server-everything: { proc, port, exited }
const serverRuns = []; // { label, log } for every start, for the failure report
let traced = null;

function killAll() {
  traced?.kill();
  try {
    server?.proc.kill("SIGKILL");
  } catch {}
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    console.log(`FAIL ${NAME}: interrupted by ${sig}`);
    dumpLogs();
    process.exit(1);
  });
}

function dumpLogs() {
  if (traced) traced.dump(process.stdout);
  else console.log("---- proxy not started ----");
  for (const r of serverRuns) {
    console.log(`---- server-everything output, ${r.label} (tail) ----`);
    process.stdout.write(r.log.slice(-4000) + (r.log.endsWith("\n") ? "" : "\n"));
  }
  console.log("---- end of server output ----");
}

let finished = false;
function finish(error, detail) {
  if (finished) return;
  finished = true;
  clearTimeout(overall);
  if (error) {
    console.log(`FAIL ${NAME}: ${error}`);
    dumpLogs();
  } else {
    console.log(`PASS ${NAME}: ${detail}`);
    if (VERBOSE) dumpLogs();
  }
  killAll();
  process.exit(error ? 1 : 0);
}

const overall = setTimeout(() => finish(`overall time limit of ${OVERALL_MS} ms exceeded`), OVERALL_MS);

/** Runs one step under its own time limit; a failure ends the run. */
async function step(name, ms, fn) {
  const t = Date.now();
  try {
    const note = await withTimeout(Promise.resolve().then(fn), ms, name);
    console.log(`  ok ${name}${note ? ` (${note})` : ""} [${Date.now() - t} ms]`);
    return note;
  } catch (e) {
    finish(`${name}: ${e?.message ?? e} [${Date.now() - t} ms]`);
    throw new StepFailed();
  }
}
class StepFailed extends Error {}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts server-everything (streamableHttp) on `port`; resolves once it logs that it listens,
 * rejects if it exits first (e.g. EADDRINUSE) or stays silent for `ms`.
 */
function startServerOn(port, label, ms = 10_000) {
  const run = { label: `${label}, port ${port}`, log: "" };
  serverRuns.push(run);
  const proc = spawn(process.execPath, [entry, "streamableHttp"], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const s = { proc, port, exited: null };
  server = s;
  s.exited = new Promise((resolve) => proc.once("exit", (code, sig) => resolve(sig ?? code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening on port ${port}" line within ${ms} ms`)), ms);
    let line = "";
    const onData = (d) => {
      run.log += d;
      line += d;
      const m = LISTENING.exec(line);
      if (m && Number(m[1]) === port) {
        clearTimeout(timer);
        resolve(s);
      }
    };
    proc.stdout.on("data", onData);
    proc.stderr.on("data", onData);
    proc.once("error", (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${how}) before listening on port ${port}`));
    });
  });
}

/** Up to `attempts` starts; between them waits for the failed server to exit, no fixed sleep. */
async function startServer(portFn, label, attempts) {
  let last;
  for (let i = 1; i <= attempts; i++) {
    const port = await portFn();
    try {
      return await startServerOn(port, i === 1 ? label : `${label}, attempt ${i}`);
    } catch (e) {
      last = e;
      server.proc.kill("SIGKILL");
      await server.exited;
    }
  }
  throw last;
}

async function echo(client, message) {
  const r = await client.callTool({ name: "echo", arguments: { message } }, undefined, { timeout: 20_000 });
  assert(!r.isError, `isError result: ${JSON.stringify(r)}`);
  assert(textOf(r) === `Echo: ${message}`, `expected ${JSON.stringify(`Echo: ${message}`)}, got ${JSON.stringify(r)}`);
  return textOf(r);
}

const sessionsOf = (log) => [...log.matchAll(/Session initialized with ID: (\S+)/g)].map((m) => m[1]);

async function main() {
  const nonce = Math.random().toString(36).slice(2, 10);
  await step("start server-everything streamableHttp", 35_000, async () => {
    const s = await startServer(freePort, "first run", 3);
    return `port ${s.port}`;
  });
  const port = server.port;
  const url = `http://127.0.0.1:${port}/mcp`;

  traced = tracedStdioTransport(bin, [...extra, url], { echoStderr: VERBOSE });
  const client = new Client({ name: "clerk-interop-session-restart", version: "1.0.0" }, { capabilities: {} });
  await step(`initialize through ${path.basename(bin)} ${[...extra, url].join(" ")}`, 20_000, async () => {
    await client.connect(traced.transport, { timeout: 15_000 });
    const info = client.getServerVersion();
    assert(info?.name === "mcp-servers/everything", `unexpected serverInfo ${JSON.stringify(info)}`);
    return `${info.name} ${info.version}`;
  });
  await step("tools/list", 10_000, async () => {
    const { tools } = await client.listTools(undefined, { timeout: 10_000 });
    assert(tools.some((t) => t.name === "echo"), `no echo tool in ${JSON.stringify(tools.map((t) => t.name))}`);
    return `${tools.length} tools`;
  });
  await step("tools/call echo before the restart", 10_000, () => echo(client, `before restart ${nonce}`));
  const oldSessions = sessionsOf(serverRuns.at(-1).log);

  await step("kill the server (SIGKILL) and wait for it to exit", 5_000, async () => {
    server.proc.kill("SIGKILL");
    return `exit ${await server.exited}`;
  });
  // The same port: a few attempts in case the port is not yet free again.
  await step(`restart the server on the same port ${port}`, 35_000, async () => {
    await startServer(async () => port, "after the restart", 3);
  });

  await step("tools/call echo after the restart (proxy renews the session and retries)", 25_000, () =>
    echo(client, `after restart 1 ${nonce}`),
  );
  await step("tools/call echo again", 10_000, () => echo(client, `after restart 2 ${nonce}`));
  const newSessions = sessionsOf(serverRuns.at(-1).log);
  await step("the restarted server saw a new session", 1_000, () => {
    assert(newSessions.length >= 1, "no 'Session initialized' in the restarted server's output");
    assert(!newSessions.some((s) => oldSessions.includes(s)), "a session id of the first run came back");
    return `old ${oldSessions.join(",") || "?"} -> new ${newSessions.join(",")}`;
  });
  await withTimeout(client.close(), 5_000, "client.close").catch(() => {});
  finish(null, `echo worked before and twice after server-everything restarted on port ${port} under the live proxy`);
}

main().catch((e) => {
  if (!(e instanceof StepFailed)) finish(`unexpected error: ${e?.stack ?? e}`);
});
