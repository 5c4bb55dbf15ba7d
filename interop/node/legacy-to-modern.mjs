#!/usr/bin/env node
// Interop: era translation (M-BRIDGE). The official TypeScript SDK Client (1.x, legacy:
// initialize-based) drives the proxy under test, which talks to a MODERN-ONLY server
// (interop/python/server.py --modern-only: the Python `mcp` 2.x SDK, with the legacy
// initialize refused as -32022). The proxy must translate every step.
//
// Usage: CLERK_MCP_BIN=/path/to/proxy node legacy-to-modern.mjs URL [PROXY_ARGS...]
// Prints one "PASS|FAIL" line per check, then "legacy-to-modern: N passed, M failed".
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import {
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from "@modelcontextprotocol/sdk/types.js";
import { assert, proxyCommand, textOf, tracedStdioTransport, withTimeout } from "./lib.mjs";

const url = process.argv[2];
if (!url) {
  console.error("usage: legacy-to-modern.mjs URL [PROXY_ARGS...]");
  process.exit(2);
}
const { bin, extra } = proxyCommand();
const proxyArgs = [...process.argv.slice(3), ...extra];
let passed = 0;
let failed = 0;
let traced = null;

async function check(name, ms, fn) {
  const t = Date.now();
  try {
    const note = await withTimeout(Promise.resolve().then(fn), ms, name);
    passed++;
    console.log(`PASS legacy-to-modern: ${name}${note ? ` (${note})` : ""} [${Date.now() - t} ms]`);
    return true;
  } catch (e) {
    failed++;
    console.log(`FAIL legacy-to-modern: ${name}: ${e?.message ?? e} [${Date.now() - t} ms]`);
    return false;
  }
}

function finish() {
  if (failed > 0 && traced) traced.dump();
  console.log(`legacy-to-modern: ${passed} passed, ${failed} failed`);
  traced?.kill();
  process.exit(failed > 0 ? 1 : 0);
}

setTimeout(() => {
  console.log("FAIL legacy-to-modern: overall time limit exceeded");
  failed++;
  finish();
}, 60000).unref();

traced = tracedStdioTransport(bin, [...proxyArgs, url]);
const client = new Client(
  { name: "clerk-interop-legacy-client", version: "1.0.0" },
  { capabilities: { elicitation: {} } },
);
const logs = [];
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
const updated = [];
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updated.push(n.params.uri));
const elicitations = [];
client.setRequestHandler(ElicitRequestSchema, async (req) => {
  elicitations.push(req.params);
  return { action: "accept", content: { name: "Ada" } };
});
const opts = { timeout: 15000 };

const connected = await check("initialize answered from server/discover", 20000, async () => {
  await client.connect(traced.transport, opts);
  const info = client.getServerVersion();
  assert(info?.name === "clerk-interop-server", `unexpected serverInfo ${JSON.stringify(info)}`);
  const caps = client.getServerCapabilities();
  assert(caps?.tools, `no tools capability: ${JSON.stringify(caps)}`);
  return `${info.name} ${info.version}`;
});
if (!connected) finish();

await check("ping (answered by the proxy)", 10000, async () => {
  await client.ping(opts);
});

await check("tools/list", 10000, async () => {
  const { tools } = await client.listTools(undefined, opts);
  const names = tools.map((t) => t.name);
  for (const want of ["echo", "slow_count", "greet", "poke"]) {
    assert(names.includes(want), `tool ${want} missing from ${JSON.stringify(names)}`);
  }
  return `${tools.length} tools`;
});

await check("tools/call echo", 10000, async () => {
  const r = await client.callTool({ name: "echo", arguments: { text: "hé ✓" } }, undefined, opts);
  assert(textOf(r) === "hé ✓", `got ${JSON.stringify(r)}`);
});

await check("tools/call that elicits (MRTR → elicitation/create)", 15000, async () => {
  const r = await client.callTool({ name: "greet", arguments: {} }, undefined, opts);
  assert(elicitations.length === 1, `expected 1 elicitation, got ${elicitations.length}`);
  assert(textOf(r) === "Hello, Ada!", `got ${JSON.stringify(r)}`);
  return elicitations[0].message;
});

await check("progress and logging (setLevel → per-request logLevel)", 15000, async () => {
  await client.setLoggingLevel("info", opts);
  const progress = [];
  const r = await client.callTool(
    { name: "slow_count", arguments: { steps: 3 } },
    undefined,
    { ...opts, onprogress: (p) => progress.push(p) },
  );
  assert(textOf(r) === "counted 3", `got ${JSON.stringify(r)}`);
  const out = traced.trace.filter((e) => e.dir === "proxy->client").map((e) => e.msg);
  const steps = out.filter((m) => m.method === "notifications/progress").length;
  assert(steps === 3, `expected 3 progress notifications on stdout, got ${steps}`);
  const logged = out.filter((m) => m.method === "notifications/message").length;
  assert(logged >= 1, "no log message reached the client");
  return `${steps} progress, ${logged} log`;
});

await check("resource subscription (subscriptions/listen)", 15000, async () => {
  await client.subscribeResource({ uri: "config://app" }, opts);
  // The listen stream opens in the background; poke until the update arrives.
  for (let i = 0; i < 50 && !updated.includes("config://app"); i++) {
    await client.callTool({ name: "poke", arguments: {} }, undefined, opts);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert(updated.includes("config://app"), "no notifications/resources/updated for config://app");
  await client.unsubscribeResource({ uri: "config://app" }, opts);
});

finish();
