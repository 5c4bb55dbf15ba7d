//! clerk-mcp-server: use a remote MCP server from any stdio MCP client.
//!
//! A client message travels stdin → `stdio` → `proxy` → `layer` (its stages) →
//! `remote`; the server's messages come back remote → `layer::inbound` (the stages in
//! reverse) → the one stdout writer.
//!
//! Where things live:
//! - `cli`      — the clap description of flags and subcommands.
//! - `config`   — flags + environment resolved into an immutable `Config`.
//! - `error`    — typed errors, most user-facing hints, and the exit codes (the
//!   transport names its timeout flags, `proxy::exchange` adds the sign-in and
//!   `--transport sse` hints).
//! - `jsonrpc`  — probing a line's kind/id/method without a full parse; error responses.
//! - `stdio`    — newline framing with a bound, and the one task that writes stdout.
//! - `proxy`    — the loop that owns the connection state and the request table, and
//!   spawns one attempt task per unit of traffic; `proxy::exchange` is one attempt's
//!   work (POST, sign-in rounds, the handshake).
//! - `layer`    — the message layer: the request table (`table`), the receiving end of
//!   the transport (`inbound`), and the stage chain, in order: `policy` (allow/deny/
//!   read-only tools), `pinning` (pinned tool definitions), `modern_tools` (2026-07-28
//!   header annotations); and `translate`, which makes a legacy client's messages modern.
//! - `remote`   — the transport only: Streamable HTTP exchanges (`http`), the SSE parser
//!   (`sse`), the 2024-11-05 HTTP+SSE transport (`legacy_sse`), modern headers
//!   (`modern`), the cookie jar (`cookies`). It hands framed messages to a `Deliver`
//!   and knows no ids or stdout.
//! - `auth`     — sign-in: discovery, registration, browser/device flows, token files,
//!   and mcp-remote compatibility (`compat`: its redirect URI, its token cache).
//! - `check`    — `clerk-mcp-server check`: a one-shot diagnosis of a setup.
//! - `tools`    — `clerk-mcp-server tools`: tools against their pins, and `--accept`.
//! - `inproc`   — a client conversation with the proxy in process, for subcommands.
//! - `accounts` — `login`, `logout` and `status`.
//! - `update`   — `self-update` from GitHub releases built by cargo-dist.
//! - `app`      — wiring for `main`: logging, signals, subcommand dispatch.
//!
//! Requirement ids such as H-404 or P-PIN are defined in `docs/requirements.md`.

pub(crate) mod accounts;
pub mod app;
pub mod auth;
pub(crate) mod check;
pub(crate) mod cli;
pub mod config;
mod connect;
pub mod error;
pub(crate) mod inproc;
pub mod jsonrpc;
pub(crate) mod layer;
pub(crate) mod proxy;
pub mod remote;
pub mod stdio;
pub(crate) mod tools;
pub(crate) mod update;
