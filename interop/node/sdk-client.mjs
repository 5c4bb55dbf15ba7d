#!/usr/bin/env node
// Interop suite: the official MCP TypeScript SDK Client (over StdioClientTransport)
// drives the proxy under test, which talks to @modelcontextprotocol/server-everything
// running on loopback in `streamableHttp` or `sse` mode.
//
// Usage: CLERK_MCP_BIN=/path/to/proxy node sdk-client.mjs MODE [PROXY_ARGS...]
//   MODE        streamableHttp | sse   (server-everything transport)
//   PROXY_ARGS  extra proxy arguments placed before the URL (e.g. --transport sse)
// Env: CLERK_MCP_ARGS (more args, space-separated), INTEROP_TIMEOUT_MS (default 60000),
//      INTEROP_VERBOSE=1 (always dump the trace, echo proxy stderr).
//
// Prints one "PASS|FAIL <mode>: <check>" line per check, then
// "sdk-client <mode>: N passed, M failed"; exits 1 if any check failed.
import { spawn } from "node:child_process";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  CreateMessageRequestSchema,
  LoggingMessageNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { assert, proxyCommand, textOf, tracedStdioTransport, withTimeout } from "./lib.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const mode = process.argv[2];
if (mode !== "streamableHttp" && mode !== "sse") {
  console.error("usage: sdk-client.mjs streamableHttp|sse [PROXY_ARGS...]");
  process.exit(2);
}
const { bin, extra } = proxyCommand();
const proxyArgs = [...process.argv.slice(3), ...extra];
const label = [mode, ...proxyArgs].join(" ");
const OVERALL_MS = Number(process.env.INTEROP_TIMEOUT_MS ?? 60000);
const VERBOSE = process.env.INTEROP_VERBOSE === "1";

let passed = 0;
let failed = 0;
let serverProc = null;
let serverLog = "";
let traced = null;

function killAll() {
  traced?.kill();
  try {
    serverProc?.kill("SIGKILL");
  } catch {}
}
process.on("exit", killAll);

const overall = setTimeout(() => {
  console.log(`FAIL ${label}: overall time limit of ${OVERALL_MS} ms exceeded`);
  failed++;
  finish();
}, OVERALL_MS);

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  clearTimeout(overall);
  if ((failed > 0 || VERBOSE) && traced) traced.dump();
  if (failed > 0 && serverLog) {
    process.stderr.write(`---- server-everything (${mode}) output (tail) ----\n${serverLog.slice(-4000)}\n`);
  }
  console.log(`sdk-client ${label}: ${passed} passed, ${failed} failed`);
  killAll();
  process.exit(failed > 0 ? 1 : 0);
}

async function check(name, ms, fn) {
  const t = Date.now();
  try {
    const note = await withTimeout(Promise.resolve().then(fn), ms, name);
    passed++;
    console.log(`PASS ${label}: ${name}${note ? ` (${note})` : ""} [${Date.now() - t} ms]`);
    return true;
  } catch (e) {
    failed++;
    console.log(`FAIL ${label}: ${name}: ${e?.message ?? e} [${Date.now() - t} ms]`);
    return false;
  }
}

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

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

/** Start server-everything in `mode` on a free loopback port; returns its MCP URL. */
async function startServer() {
  const entry = path.join(here, "node_modules/@modelcontextprotocol/server-everything/dist/index.js");
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort();
    serverLog = "";
    const proc = spawn(process.execPath, [entry, mode], {
      env: { ...process.env, PORT: String(port) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    serverProc = proc;
    let exited = false;
    proc.on("exit", () => (exited = true));
    proc.stdout.on("data", (d) => (serverLog += d));
    proc.stderr.on("data", (d) => (serverLog += d));
    const deadline = Date.now() + 15000;
    while (!exited && Date.now() < deadline) {
      if (await canConnect(port)) {
        return `http://127.0.0.1:${port}${mode === "sse" ? "/sse" : "/mcp"}`;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    proc.kill("SIGKILL");
    console.error(`server-everything did not come up on port ${port} (attempt ${attempt}):\n${serverLog}`);
  }
  throw new Error("could not start server-everything");
}

async function main() {
  let url;
  const ok = await check(`start server-everything ${mode}`, 20000, async () => {
    url = await startServer();
    return url;
  });
  if (!ok) return finish();

  traced = tracedStdioTransport(bin, [...proxyArgs, url], { echoStderr: VERBOSE });
  const client = new Client(
    { name: "clerk-interop-sdk-client", version: "1.0.0" },
    { capabilities: { sampling: {} } },
  );
  const logs = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
  const samplingRequests = [];
  const nonce = `nonce-${Math.random().toString(36).slice(2)}`;
  client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    samplingRequests.push(req.params);
    return {
      model: "interop-fake-model",
      role: "assistant",
      stopReason: "endTurn",
      content: { type: "text", text: `sampled ${nonce}` },
    };
  });
  const reqOpts = { timeout: 15000 };

  const connected = await check("initialize", 20000, async () => {
    await client.connect(traced.transport, reqOpts);
    const info = client.getServerVersion();
    assert(info?.name === "mcp-servers/everything", `unexpected serverInfo ${JSON.stringify(info)}`);
    const caps = client.getServerCapabilities();
    assert(caps?.tools && caps?.logging !== undefined, `missing tools/logging capability: ${JSON.stringify(caps)}`);
    const pv = traced.trace.find((e) => e.dir === "proxy->client" && e.msg.result?.protocolVersion)?.msg.result.protocolVersion;
    return `server ${info.name} ${info.version}, protocol ${pv}`;
  });
  if (!connected) return finish();

  await check("ping", 10000, async () => {
    const r = await client.ping(reqOpts);
    assert(r && typeof r === "object", `bad ping result ${JSON.stringify(r)}`);
  });

  await check("tools/list", 10000, async () => {
    const { tools } = await client.listTools(undefined, reqOpts);
    const names = tools.map((t) => t.name);
    for (const want of ["echo", "trigger-long-running-operation", "toggle-simulated-logging", "get-sum"]) {
      assert(names.includes(want), `tool ${want} missing from ${JSON.stringify(names)}`);
    }
    const echo = tools.find((t) => t.name === "echo");
    assert(echo.inputSchema?.properties?.message, `echo inputSchema lacks 'message': ${JSON.stringify(echo.inputSchema)}`);
    return `${tools.length} tools`;
  });

  await check("tools/call echo (unicode, quotes, newline)", 10000, async () => {
    const message = `héllo wörld 🌍 "quoted" \\ back\nslash 中文 ${nonce}`;
    const r = await client.callTool({ name: "echo", arguments: { message } }, undefined, reqOpts);
    assert(!r.isError, `isError result: ${JSON.stringify(r)}`);
    assert(textOf(r) === `Echo: ${message}`, `got ${JSON.stringify(textOf(r))}`);
  });

  await check("8 concurrent tools/call get-sum", 15000, async () => {
    const rs = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        client.callTool({ name: "get-sum", arguments: { a: i, b: 1000 } }, undefined, reqOpts),
      ),
    );
    rs.forEach((r, i) => {
      const t = textOf(r);
      assert(t.includes(String(i + 1000)), `call ${i}: expected sum ${i + 1000} in ${JSON.stringify(t)}`);
    });
  });

  await check("tools/call unknown tool yields an error", 10000, async () => {
    let r;
    try {
      r = await client.callTool({ name: "no-such-tool-xyz", arguments: {} }, undefined, reqOpts);
    } catch (e) {
      assert(typeof e?.code === "number", `expected a JSON-RPC error, got ${e}`);
      return `JSON-RPC error ${e.code}`;
    }
    assert(r.isError === true, `expected isError result, got ${JSON.stringify(r)}`);
    return "isError result";
  });

  await check("progress notifications (trigger-long-running-operation)", 20000, async () => {
    const progress = [];
    const r = await client.callTool(
      { name: "trigger-long-running-operation", arguments: { duration: 2, steps: 4 } },
      undefined,
      { ...reqOpts, onprogress: (p) => progress.push(p) },
    );
    assert(/completed/i.test(textOf(r)), `unexpected result ${JSON.stringify(r)}`);
    // What the proxy wrote to stdout, in order: the request's progress notifications
    // must all precede its response. (The SDK Client dispatches notifications a microtask
    // late, so onprogress can miss the last one when it shares a stdout chunk with the
    // response; hence the trace, not onprogress, is checked for completeness.)
    const req = traced.trace.find((e) => e.dir === "client->proxy" && e.msg.params?.name === "trigger-long-running-operation");
    const token = req?.msg.params?._meta?.progressToken;
    assert(token !== undefined, "SDK did not send a progressToken");
    const out = traced.trace.filter((e) => e.dir === "proxy->client");
    const respIdx = out.findIndex((e) => e.msg.id === req.msg.id && ("result" in e.msg || "error" in e.msg));
    const raw = out
      .map((e, i) => ({ i, m: e.msg }))
      .filter(({ m }) => m.method === "notifications/progress" && m.params?.progressToken === token);
    const seq = raw.map(({ m }) => `${m.params.progress}/${m.params.total}`).join(",");
    assert(seq === "1/4,2/4,3/4,4/4", `expected progress 1/4,2/4,3/4,4/4 on stdout, got [${seq}]`);
    assert(raw.every(({ i }) => i < respIdx), "a progress notification came after the tool result");
    const spread = out[respIdx].ms - out[raw[0].i].ms;
    assert(spread >= 1000, `progress not streamed: first one only ${spread} ms before the result (expected ~1500)`);
    assert(progress.length >= 1, "onprogress handler never called");
    return seq;
  });

  await check("server->client request: sampling/createMessage round trip", 15000, async () => {
    const r = await client.callTool(
      { name: "trigger-sampling-request", arguments: { prompt: `prompt ${nonce}`, maxTokens: 7 } },
      undefined,
      reqOpts,
    );
    assert(samplingRequests.length === 1, `expected 1 sampling request, got ${samplingRequests.length}`);
    const sent = JSON.stringify(samplingRequests[0]);
    assert(sent.includes(`prompt ${nonce}`) && samplingRequests[0].maxTokens === 7, `bad sampling params ${sent}`);
    assert(textOf(r).includes(`sampled ${nonce}`), `tool result lacks sampled text: ${JSON.stringify(r)}`);
  });

  await check("logging/setLevel debug + notifications/message arrives", 20000, async () => {
    const r = await client.setLoggingLevel("debug", reqOpts);
    assert(r && typeof r === "object", `bad setLevel result ${JSON.stringify(r)}`);
    const before = logs.length;
    const t = await client.callTool({ name: "toggle-simulated-logging", arguments: {} }, undefined, reqOpts);
    assert(/Started/.test(textOf(t)), `toggle did not start logging: ${JSON.stringify(t)}`);
    // One message is sent at once, then one every 5 s (on the standalone GET stream
    // in streamable HTTP); wait up to 12 s for the first one to reach us.
    const deadline = Date.now() + 12000;
    while (logs.length === before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    const stop = await client.callTool({ name: "toggle-simulated-logging", arguments: {} }, undefined, reqOpts);
    assert(/Stopped/.test(textOf(stop)), `toggle did not stop logging: ${JSON.stringify(stop)}`);
    assert(logs.length > before, "no notifications/message within 12 s");
    const m = logs[before];
    assert(typeof m.level === "string" && /-level message|level-message/.test(String(m.data)), `odd log ${JSON.stringify(m)}`);
    return `${m.level}: ${m.data}`;
  });

  await check("session still usable after everything (echo)", 10000, async () => {
    const r = await client.callTool({ name: "echo", arguments: { message: "bye" } }, undefined, reqOpts);
    assert(textOf(r) === "Echo: bye", `got ${JSON.stringify(textOf(r))}`);
  });

  await check("proxy exits after stdin is closed", 10000, async () => {
    const pid = traced.pid();
    const t0 = Date.now();
    await client.close(); // ends stdin; SIGTERM after 2 s, SIGKILL after 4 s
    const took = Date.now() - t0;
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch {}
    assert(!alive, `proxy pid ${pid} still alive after close`);
    assert(took < 1900, `proxy did not exit within 2 s of stdin EOF (needed SIGTERM; close took ${took} ms)`);
    return `${took} ms`;
  });
  finish();
}

main().catch((e) => {
  console.log(`FAIL ${label}: unexpected error: ${e?.stack ?? e}`);
  failed++;
  finish();
});
