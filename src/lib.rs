//! clerk-mcp-server: use a remote MCP server from any stdio MCP client.
//!
//! Where things live:
//! - `cli`      — the clap description of flags and subcommands.
//! - `config`   — flags + environment resolved into an immutable `Config`.
//! - `error`    — typed errors and the single mapping to hints and exit codes.
//! - `jsonrpc`  — probing a line's kind/id/method without a full parse; error responses.
//! - `stdio`    — newline framing with a bound, and the one task that writes stdout.
//! - `proxy`    — the loop that owns the connection state and spawns request tasks;
//!   `proxy::exchange` is one request's work (POST, sign-in rounds, the handshake).
//! - `remote`   — the HTTP side: Streamable HTTP exchanges (`http`), the SSE parser
//!   (`sse`), the 2024-11-05 HTTP+SSE transport (`legacy_sse`), modern headers (`modern`).
//! - `auth`     — sign-in: discovery, registration, browser/device flows, token files.
//! - `check`    — `clerk-mcp-server check`: a one-shot diagnosis of a setup.
//! - `accounts` — `login`, `logout` and `status`.
//! - `update`   — `self-update` from GitHub releases built by cargo-dist.
//! - `app`      — wiring for `main`: logging, signals, subcommand dispatch.
//!
//! Checklist ids such as H-404 refer to `../shared/mcp-client-requirements.md`.

pub mod accounts;
pub mod app;
pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
mod connect;
pub mod error;
pub mod jsonrpc;
pub mod proxy;
pub mod remote;
pub mod stdio;
pub mod update;
