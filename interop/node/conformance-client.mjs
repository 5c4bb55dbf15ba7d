#!/usr/bin/env node
// Client-under-test for `@modelcontextprotocol/conformance client`.
//
// The conformance runner starts a scenario's test server, then runs
//   <--command> <serverUrl>
// (split on spaces, run through a shell) with MCP_CONFORMANCE_SCENARIO=<scenario name>
// (and MCP_CONFORMANCE_CONTEXT=<json> for auth scenarios). This program is that command:
// it spawns the proxy under test, `$CLERK_MCP_BIN [$CLERK_MCP_ARGS] <serverUrl>`, through
// the SDK's StdioClientTransport, and performs the scenario's client-side actions through it.
// Exit code 0 = the client saw what it expected; the runner judges the server-side checks.
// Env: INTEROP_TIMEOUT_MS (default 50000; keep below the runner's --timeout),
//      INTEROP_VERBOSE=1 (dump the stdio trace even on success).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ElicitRequestSchema } from "@modelcontextprotocol/sdk/types.js";
import { assert, proxyCommand, textOf, tracedStdioTransport, withTimeout } from "./lib.mjs";

const url = process.argv[process.argv.length - 1];
const scenario = process.env.MCP_CONFORMANCE_SCENARIO;
const { bin, extra } = proxyCommand();
const log = (...a) => console.error(`[conformance-client ${scenario}]`, ...a);
const reqOpts = { timeout: 20000 };

if (!url || !/^https?:\/\//.test(url) || !scenario) {
  console.error("usage: MCP_CONFORMANCE_SCENARIO=<name> CLERK_MCP_BIN=<proxy> conformance-client.mjs <serverUrl>");
  process.exit(2);
}

const traced = tracedStdioTransport(bin, [...extra, url], { echoStderr: true });

function defaultsFromSchema(schema) {
  const out = {};
  for (const [k, v] of Object.entries(schema?.properties ?? {})) {
    if (v && "default" in v) out[k] = v.default;
  }
  return out;
}

const scenarios = {
  // Server checks the initialize params (protocolVersion, clientInfo name/version).
  async initialize(client) {
    const info = client.getServerVersion();
    assert(info?.name === "test-server", `unexpected serverInfo ${JSON.stringify(info)}`);
    const { tools } = await client.listTools(undefined, reqOpts);
    assert(Array.isArray(tools), "tools/list did not return an array");
  },

  // Stateless streamable-HTTP server with one tool, add_numbers(a, b).
  async tools_call(client) {
    const { tools } = await client.listTools(undefined, reqOpts);
    assert(tools.some((t) => t.name === "add_numbers"), `add_numbers not listed: ${JSON.stringify(tools)}`);
    const r = await client.callTool({ name: "add_numbers", arguments: { a: 5, b: 3 } }, undefined, reqOpts);
    assert(textOf(r) === "The sum of 5 and 3 is 8", `unexpected result ${JSON.stringify(r)}`);
  },

  // The tool sends elicitation/create (a server->client request on the POST's SSE stream)
  // whose schema has defaults for every field; the client must accept with those defaults.
  async "elicitation-sep1034-client-defaults"(client) {
    const { tools } = await client.listTools(undefined, reqOpts);
    const name = "test_client_elicitation_defaults";
    assert(tools.some((t) => t.name === name), `${name} not listed`);
    const r = await client.callTool({ name, arguments: {} }, undefined, reqOpts);
    assert(textOf(r).startsWith("Elicitation completed:"), `unexpected result ${JSON.stringify(r)}`);
  },

  // tools/call answers with an SSE stream holding only a priming event
  // (`id: event-N`, `retry: 500`, empty data) and closes it after 50 ms; the client must
  // reconnect with GET + Last-Event-ID after ~500 ms, and the result arrives on that GET stream.
  async "sse-retry"(client) {
    const { tools } = await client.listTools(undefined, reqOpts);
    assert(tools.some((t) => t.name === "test_reconnection"), "test_reconnection not listed");
    const r = await client.callTool({ name: "test_reconnection", arguments: {} }, undefined, reqOpts);
    assert(textOf(r) === "Reconnection test completed successfully", `unexpected result ${JSON.stringify(r)}`);
  },
};

async function main() {
  const run = scenarios[scenario];
  if (!run) {
    log(`unknown scenario; supported: ${Object.keys(scenarios).join(", ")}`);
    process.exit(2);
  }
  const client = new Client(
    { name: "clerk-interop-conformance-client", version: "1.0.0" },
    { capabilities: { elicitation: { form: { applyDefaults: true } } } },
  );
  const elicitations = [];
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    elicitations.push(req.params);
    // Accept, filling in every default the form offers (SEP-1034).
    return { action: "accept", content: defaultsFromSchema(req.params.requestedSchema) };
  });
  log(`spawning ${bin} ${[...extra, url].join(" ")}`);
  await client.connect(traced.transport, reqOpts);
  await run(client);
  if (scenario === "elicitation-sep1034-client-defaults") {
    assert(elicitations.length === 1, `expected 1 elicitation request, got ${elicitations.length}`);
  }
  await withTimeout(client.close(), 6000, "close");
}

let code = 0;
try {
  await withTimeout(main(), Number(process.env.INTEROP_TIMEOUT_MS ?? 50000), `scenario ${scenario}`);
  log("OK");
} catch (e) {
  code = 1;
  log(`FAILED: ${e?.stack ?? e}`);
}
if (code !== 0 || process.env.INTEROP_VERBOSE === "1") traced.dump();
traced.kill();
process.exit(code);
