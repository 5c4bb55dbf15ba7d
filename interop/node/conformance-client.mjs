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
//
// Auth scenarios (auth/*): the proxy is run as
//   $CLERK_MCP_BIN [$CLERK_MCP_ARGS] --config-dir <fresh temp dir> \
//     (--client-id ID [--client-secret SECRET] | --client-metadata-url <CIMD_URL>) <serverUrl>
// with BROWSER=<this dir>/follow-browser.mjs in its environment (the proxy runs
// `$BROWSER <authorization URL>`; it follows the AS's redirect to the proxy's loopback callback).
// --client-id/--client-secret come from MCP_CONFORMANCE_CONTEXT (auth/pre-registration);
// otherwise --client-metadata-url is always passed: the proxy must use it only when the AS
// metadata says client_id_metadata_document_supported=true and register dynamically otherwise.
// Env: INTEROP_TIMEOUT_MS (default 50000; keep below the runner's --timeout),
//      INTEROP_VERBOSE=1 (dump the stdio trace even on success),
//      INTEROP_KEEP_RESULTS=1 (keep the auth scenario's temp dir: config dir and browser log).
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { ElicitRequestSchema, ErrorCode, McpError } from "@modelcontextprotocol/sdk/types.js";
import { assert, proxyCommand, textOf, tracedStdioTransport, withTimeout } from "./lib.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const url = process.argv[process.argv.length - 1];
const scenario = process.env.MCP_CONFORMANCE_SCENARIO;
const { bin, extra } = proxyCommand();
const log = (...a) => console.error(`[conformance-client ${scenario}]`, ...a);
const reqOpts = { timeout: 20000 };

if (!url || !/^https?:\/\//.test(url) || !scenario) {
  console.error("usage: MCP_CONFORMANCE_SCENARIO=<name> CLERK_MCP_BIN=<proxy> conformance-client.mjs <serverUrl>");
  process.exit(2);
}

// The client_id the conformance suite expects in auth/basic-cimd (a constant of the suite,
// not passed in MCP_CONFORMANCE_CONTEXT; the AS never fetches it).
const CIMD_URL = "https://conformance-test.local/client-metadata.json";
const isAuth = scenario.startsWith("auth/");
let authDir = null; // holds config/ (the proxy's --config-dir) and browser.log
const authArgs = [];
if (isAuth) {
  authDir = mkdtempSync(join(tmpdir(), "clerk-interop-auth-"));
  const configDir = join(authDir, "config");
  mkdirSync(configDir);
  let ctx = {};
  if (process.env.MCP_CONFORMANCE_CONTEXT) {
    try {
      ctx = JSON.parse(process.env.MCP_CONFORMANCE_CONTEXT);
    } catch (e) {
      log(`bad MCP_CONFORMANCE_CONTEXT: ${e}`);
      process.exit(2);
    }
  }
  authArgs.push("--config-dir", configDir);
  if (scenario.startsWith("auth/client-credentials-")) {
    // A machine: client_credentials with a secret, or a private_key_jwt assertion signed
    // with the key the scenario generated (written to a 0600 file for --client-key).
    authArgs.push("--grant", "client-credentials");
  }
  if (ctx.valid_jwt) {
    // A workload: the platform's JWT in a file, as a pod or CI job would have it.
    const jwtFile = join(authDir, "workload.jwt");
    writeFileSync(jwtFile, ctx.valid_jwt, { mode: 0o600 });
    authArgs.push("--grant", "jwt-bearer", "--assertion-file", jwtFile);
  }
  if (ctx.idp_id_token) {
    // Enterprise SSO: the user's ID token (here a file) is exchanged at the IdP for an
    // ID-JAG, which the proxy then presents to the MCP authorization server.
    const idFile = join(authDir, "id-token.jwt");
    writeFileSync(idFile, ctx.idp_id_token, { mode: 0o600 });
    authArgs.push("--grant", "id-jag", "--idp-token-endpoint", ctx.idp_token_endpoint,
      "--idp-client-id", ctx.idp_client_id, "--id-token-file", idFile);
  }
  if (ctx.private_key_pem) {
    const keyFile = join(authDir, "client-key.pem");
    writeFileSync(keyFile, ctx.private_key_pem, { mode: 0o600 });
    authArgs.push("--client-key", keyFile);
  }
  if (ctx.client_id) {
    authArgs.push("--client-id", ctx.client_id);
    if (ctx.client_secret) authArgs.push("--client-secret", ctx.client_secret);
  } else {
    authArgs.push("--client-metadata-url", CIMD_URL);
  }
  // Inherited by the proxy (tracedStdioTransport passes process.env) and by follow-browser.
  process.env.BROWSER = join(here, "follow-browser.mjs");
  process.env.FOLLOW_BROWSER_LOG = join(authDir, "browser.log");
}
const proxyArgs = [...extra, ...authArgs, url];

const traced = tracedStdioTransport(bin, proxyArgs, { echoStderr: true });

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

// ---- Auth scenarios -------------------------------------------------------------------
// Each scenario's server is stateless streamable HTTP on POST /mcp (GET/DELETE /mcp answer 404)
// with one tool, test-tool, returning text "test". The proxy signs in when the server answers 401
// (or 403 insufficient_scope), through $BROWSER; the runner judges the OAuth checks.

// The well-behaved flow, as in the suite's reference client: initialize, tools/list,
// tools/call test-tool. (auth/scope-step-up needs the tools/call: it alone requires mcp:write.)
async function authFlow(client) {
  const { tools } = await client.listTools(undefined, reqOpts);
  assert(tools.some((t) => t.name === "test-tool"), `test-tool not listed: ${JSON.stringify(tools)}`);
  const r = await client.callTool({ name: "test-tool", arguments: {} }, undefined, reqOpts);
  assert(textOf(r) === "test", `unexpected result ${JSON.stringify(r)}`);
}
for (const s of [
  "auth/metadata-default",
  "auth/metadata-var1",
  "auth/metadata-var2",
  "auth/metadata-var3",
  "auth/basic-cimd",
  "auth/scope-from-www-authenticate",
  "auth/scope-from-scopes-supported",
  "auth/scope-omitted-when-undefined",
  "auth/scope-step-up",
  "auth/token-endpoint-auth-basic",
  "auth/token-endpoint-auth-post",
  "auth/token-endpoint-auth-none",
  "auth/pre-registration",
  "auth/2025-03-26-oauth-metadata-backcompat",
  "auth/2025-03-26-oauth-endpoint-fallback",
  "auth/offline-access-scope",
  "auth/offline-access-not-supported",
  // 0.2.0 line: the PRM names a new issuer after the first authorized request.
  "auth/authorization-server-migration",
  // Extension scenarios (0.2.0 line): machine sign-in, no browser.
  "auth/client-credentials-basic",
  "auth/client-credentials-jwt",
  "auth/wif-jwt-bearer",
  "auth/enterprise-managed-authorization",
  // DPoP (SEP-1932): a browser sign-in whose tokens are bound to the proxy's key.
  "auth/dpop",
  "auth/dpop-nonce",
]) {
  scenarios[s] = authFlow;
}

// Scenarios where the proxy must give up (the runner allows a client error): these pass
// when the stage named fails promptly (a JSON-RPC error, or the proxy exiting), and fail if it
// succeeds or goes unanswered until the request timeout (run.sh fails a scenario whose client
// exited non-zero even when the runner, which ignores the exit code here, passes it).
const expectFailure = {
  // PRM says resource=https://evil.example.com/mcp: the proxy must refuse to authorize, so
  // initialize (which needs a token here) must fail.
  "auth/resource-mismatch": { at: "initialize" },
  // initialize needs no token; tools/list gets 401, then 403 insufficient_scope forever (410
  // after the third authorized request). At most 3 authorization requests in all, then an error.
  "auth/scope-retry-limit": { at: "tools/list" },
};

async function main() {
  const run = scenarios[scenario];
  if (!run && !expectFailure[scenario]) {
    log(`unknown scenario; supported: ${[...Object.keys(scenarios), ...Object.keys(expectFailure)].join(", ")}`);
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
  log(`spawning ${isAuth ? `BROWSER=${process.env.BROWSER} ` : ""}${bin} ${proxyArgs.join(" ")}`);
  const fail = expectFailure[scenario];
  if (fail) {
    // Run initialize, then tools/list; exactly the stage fail.at must fail.
    let stage = "initialize";
    try {
      await client.connect(traced.transport, reqOpts);
      stage = "tools/list";
      await client.listTools(undefined, reqOpts);
      stage = null;
    } catch (e) {
      if (stage !== fail.at) throw new Error(`expected ${fail.at} to fail, but ${stage} failed: ${e.message}`);
      // Giving up means answering with an error (or exiting), not leaving the request unanswered.
      if (e instanceof McpError && e.code === ErrorCode.RequestTimeout) {
        throw new Error(`${stage} got no answer within ${reqOpts.timeout} ms: the proxy neither answered nor gave up`);
      }
      log(`${stage} failed as expected: ${e.message}`);
    }
    await withTimeout(client.close(), 6000, "close").catch(() => {});
    if (stage === null) throw new Error(`expected ${fail.at} to fail, but initialize and tools/list succeeded`);
    return;
  }
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
if (code !== 0 || process.env.INTEROP_VERBOSE === "1") {
  traced.dump();
  if (authDir) {
    let browserLog = "";
    try {
      browserLog = readFileSync(join(authDir, "browser.log"), "utf8");
    } catch {}
    process.stderr.write(`---- browser log ----\n${browserLog || "(empty: the proxy never ran $BROWSER)\n"}---- end ----\n`);
  }
}
traced.kill();
if (authDir) {
  if (process.env.INTEROP_KEEP_RESULTS === "1") log(`auth temp dir kept: ${authDir}`);
  else rmSync(authDir, { recursive: true, force: true });
}
process.exit(code);
