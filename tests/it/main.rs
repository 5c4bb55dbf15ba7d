//! Integration tests: the real binary against in-process mock servers on 127.0.0.1:0.
//! Each test names the requirement ids (docs/requirements.md) it covers.

mod support;

mod auth;
mod backport;
mod cli;
mod fallback;
mod faults;
mod hygiene;
mod invariants;
mod keychain;
mod layer;
mod mcp_remote;
mod modern;
mod stdio;
mod streamable;
mod tls;
mod tools;
mod translate;
