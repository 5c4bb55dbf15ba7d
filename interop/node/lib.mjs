// Shared helpers for the Node interop suites.
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";

/** Parse CLERK_MCP_BIN (required) and CLERK_MCP_ARGS (optional, space-separated). */
export function proxyCommand() {
  const bin = process.env.CLERK_MCP_BIN;
  if (!bin) {
    console.error("CLERK_MCP_BIN is not set (path of the proxy binary to test)");
    process.exit(2);
  }
  const extra = (process.env.CLERK_MCP_ARGS ?? "").split(/\s+/).filter(Boolean);
  return { bin, extra };
}

/**
 * A StdioClientTransport spawning `bin ...args`, with proxy stderr captured and
 * every JSON-RPC message crossing stdin/stdout recorded in `trace`
 * as {ms, dir: "client->proxy"|"proxy->client", msg}.
 */
export function tracedStdioTransport(bin, args, { echoStderr = false } = {}) {
  const transport = new StdioClientTransport({
    command: bin,
    args,
    env: { ...process.env },
    stderr: "pipe",
  });
  const trace = [];
  const t0 = Date.now();
  let stderrBuf = "";
  transport.stderr?.on("data", (chunk) => {
    const s = chunk.toString();
    stderrBuf += s;
    if (stderrBuf.length > 200_000) stderrBuf = stderrBuf.slice(-100_000);
    if (echoStderr) process.stderr.write(s);
  });
  // Remember the child's pid even after the transport forgets it, so callers can kill it.
  let pid = null;
  const origStart = transport.start.bind(transport);
  transport.start = async () => {
    const r = await origStart();
    pid = transport.pid;
    return r;
  };
  const origSend = transport.send.bind(transport);
  transport.send = (msg, opts) => {
    trace.push({ ms: Date.now() - t0, dir: "client->proxy", msg });
    return origSend(msg, opts);
  };
  // Client.connect() installs onmessage after construction; wrap it on set.
  let userOnMessage;
  Object.defineProperty(transport, "onmessage", {
    configurable: true,
    get: () => (userOnMessage ? wrapped : undefined),
    set: (fn) => {
      userOnMessage = fn;
    },
  });
  const wrapped = (msg, extra) => {
    trace.push({ ms: Date.now() - t0, dir: "proxy->client", msg });
    return userOnMessage?.(msg, extra);
  };
  return {
    transport,
    trace,
    stderr: () => stderrBuf,
    pid: () => pid,
    /** SIGKILL the proxy if it is still running. */
    kill() {
      try {
        if (pid) process.kill(pid, "SIGKILL");
      } catch {}
    },
    dump(out = process.stderr, maxLines = 200) {
      const clip = (s) => (s.length > 2000 ? s.slice(0, 2000) + "…" : s);
      out.write(`---- JSON-RPC over the proxy's stdio (last ${maxLines}) ----\n`);
      for (const e of trace.slice(-maxLines)) {
        out.write(clip(`+${String(e.ms).padStart(6)}ms ${e.dir} ${JSON.stringify(e.msg)}`) + "\n");
      }
      out.write("---- proxy stderr (tail) ----\n");
      out.write(stderrBuf.slice(-8000) + (stderrBuf.endsWith("\n") ? "" : "\n"));
      out.write("---- end ----\n");
    },
  };
}

/** Reject after `ms` with a descriptive error. */
export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      timer.unref?.();
    }),
  ]).finally(() => clearTimeout(timer));
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export function textOf(result) {
  return (result?.content ?? [])
    .filter((c) => c.type === "text")
    .map((c) => c.text)
    .join("\n");
}
