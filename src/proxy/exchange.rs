//! One exchange with the server: POSTing a message and reading what answers it
//! ([`forward`]), the sign-in rounds a request may need ([`AuthBudget`]), the handshake
//! ([`initialize`], with the HTTP+SSE fallback), and the `tools/list` refresh of the
//! 2026-07-28 revision. Everything here runs inside request tasks; the loop in
//! `proxy.rs` owns the state and hears back over its event channel.

use super::mrtr;
use super::*;
use crate::stdio::one_line;

/// A single client message as a unit of traffic (its table record is made on dispatch).
pub(super) fn unit(body: &Bytes, m: &jsonrpc::Message<'_>, chain: &Chain) -> Outgoing {
    // Most traffic is legacy: a substring test spares those messages a second parse.
    // (A key written with JSON escapes would be missed; no client spells it that way.)
    let maybe_modern = m
        .params
        .is_some_and(|p| p.get().contains(jsonrpc::META_PROTOCOL_VERSION));
    let params = if maybe_modern {
        ParamsProbe::of(m.params)
    } else {
        ParamsProbe::default()
    };
    let era = match params.modern_version() {
        Some(v) => Era::Modern {
            version: v.to_owned(),
        },
        None => Era::Legacy,
    };
    let modern = era.is_modern();
    Outgoing {
        body: body.clone(),
        expects: match (&m.id, m.kind) {
            (Some(id), Kind::Request) => vec![Expect::new(chain, id.clone(), m.method(), modern)],
            _ => Vec::new(),
        },
        method: m.method().to_owned(),
        era,
        retried: false,
        unit: 0,
        translated: None,
    }
}

/// POST one message on Streamable HTTP and report how it ended.
pub(super) async fn forward(
    ctx: &Ctx,
    mut msg: Outgoing,
    session: Option<(SessionHeaders, u64)>,
    idle: Option<Duration>,
) -> Event {
    let unit = msg.unit;
    let mut budget = AuthBudget::default();
    // A translated request's answer is held until it is known to be final (MRTR).
    let translated = msg
        .translated
        .clone()
        .filter(|_| !msg.expects.is_empty() && !msg.long_lived());
    let mut rounds = 0;
    loop {
        let headers = match &msg.era {
            Era::Modern { version } => ctx.tools.headers_for(version, &msg.body),
            Era::Legacy => {
                let mut h = HeaderMap::new();
                if let Some((s, _)) = &session {
                    s.apply(&mut h);
                }
                h
            }
        };
        let modern = msg.era.is_modern();
        let mut sink = Inbound::new(&ctx.down, msg.expects.clone());
        if let Some(t) = &msg.translated {
            sink = sink.for_legacy_client(t.clone());
        }
        if translated.is_some() {
            sink = sink.quiet();
        }
        let post = Post {
            body: msg.body.clone(),
            headers,
            session: session.as_ref().map(|(s, _)| s),
            idle,
            resumable: !modern,
            // Same-era traffic pays nothing for this: it only changes how a 400 is read.
            probe_era: modern
                && msg.translated.is_none()
                && ctx.protocol == ProtocolMode::Auto
                && !ctx.backport.active(),
        };
        let outcome = ctx.http.exchange(post, &mut sink).await;
        let error = match outcome {
            Outcome::Done { .. } => None,
            Outcome::OutputClosed => None,
            o @ (Outcome::Unauthorized { .. } | Outcome::InsufficientScope { .. }) => {
                match budget.handle(&ctx.http, o).await {
                    Ok(()) => continue,
                    Err(e) => Some(e),
                }
            }
            Outcome::LegacyOnly(_) => return Event::LegacyOnly { msg },
            Outcome::SessionGone => {
                let generation = session.as_ref().map(|(_, g)| *g).unwrap_or(0);
                return Event::SessionGone {
                    unit,
                    generation,
                    msg,
                };
            }
            Outcome::Status {
                header_mismatch: true,
                ..
            } if modern && !msg.retried => {
                // M-MISMATCH: learn the tools again, then retry once.
                tracing::info!(
                    "server reported a header mismatch; refreshing tools/list and retrying"
                );
                refresh_tools(ctx, &msg, idle).await;
                msg.retried = true;
                continue;
            }
            Outcome::Status { error, .. } | Outcome::Failed(error) => Some(error),
        };
        if let (None, Some(t), Some(answer)) = (&error, &translated, sink.capture.clone()) {
            match mrtr::settle(ctx, &mut msg, t, answer, &mut rounds).await {
                std::ops::ControlFlow::Continue(()) => continue,
                std::ops::ControlFlow::Break(event) => return event,
            }
        }
        if let Some(e) = &error
            && msg.expects.is_empty()
        {
            tracing::warn!(method = %msg.method, "a notification or response was not delivered: {e}");
        }
        return Event::Finished {
            unit,
            unanswered: sink.unanswered(),
            error,
        };
    }
}

/// Sign-in retries for one request: each 401 (refresh or sign in) or 403
/// `insufficient_scope` (step up) is one round, and three rounds at most (A-STEPUP), so
/// a server that never accepts cannot loop the user through sign-ins.
#[derive(Default)]
pub(super) struct AuthBudget {
    rounds: u8,
    step_ups: u8,
}

const MAX_AUTH_ROUNDS: u8 = 3;

impl AuthBudget {
    /// Ok: retry the request. Err: give up with this error for the client.
    pub(super) async fn handle(
        &mut self,
        http: &Http,
        outcome: Outcome,
    ) -> Result<(), RemoteError> {
        let Some(auth) = &http.auth else {
            return Err(RemoteError::Other(format!(
                "authorization required: pass a token with {}",
                crate::error::hint::BEARER_HEADER
            )));
        };
        let host = &http.host;
        self.rounds += 1;
        let exhausted = self.rounds > MAX_AUTH_ROUNDS;
        let result = match outcome {
            Outcome::Unauthorized { .. } if exhausted => {
                return Err(RemoteError::Auth(
                    crate::auth::AuthError::StillRefused("HTTP 401".into()).to_string(),
                ));
            }
            Outcome::InsufficientScope { .. } if exhausted => {
                return Err(RemoteError::Auth(
                    crate::auth::AuthError::StillRefused(format!(
                        "HTTP 403 insufficient_scope after {} step-ups",
                        self.step_ups
                    ))
                    .to_string(),
                ));
            }
            Outcome::Unauthorized {
                challenge,
                generation,
            } => auth.unauthorized(generation, challenge).await,
            Outcome::InsufficientScope {
                challenge,
                generation,
            } => {
                self.step_ups += 1;
                auth.step_up(generation, challenge).await
            }
            _ => return Ok(()),
        };
        result.map_err(|e| {
            tracing::warn!("sign-in failed: {e}");
            crate::error::sign_in_failed(host, if self.step_ups > 0 { 403 } else { 401 }, &e)
        })
    }
}

/// Fetch `tools/list` (every page, bounded) with the failing request's `_meta`, so the
/// annotations are current (M-MISMATCH).
async fn refresh_tools(ctx: &Ctx, msg: &Outgoing, idle: Option<Duration>) {
    let Era::Modern { version } = &msg.era else {
        return;
    };
    let meta = serde_json::from_slice::<serde_json::Value>(&msg.body)
        .ok()
        .and_then(|v| v.get("params").and_then(|p| p.get("_meta")).cloned())
        .unwrap_or_else(|| serde_json::json!({ jsonrpc::META_PROTOCOL_VERSION: version }));
    // The refreshed pages pass the chain (the annotations are learned there), but they
    // and whatever else the server sends meanwhile are the proxy's, not the client's.
    let (sink_out, mut discard) = mpsc::channel::<Bytes>(16);
    let drain = tokio::spawn(async move { while discard.recv().await.is_some() {} });
    let down = Downstream {
        out: sink_out,
        chain: ctx.down.chain.clone(),
        host: ctx.down.host.clone(),
    };
    let mut cursor: Option<String> = None;
    for page in 0..MAX_TOOLS_PAGES {
        let id = format!("\"clerk-mcp-server/tools-refresh/{page}\"");
        let mut params = serde_json::json!({ "_meta": meta });
        if let Some(c) = &cursor {
            params["cursor"] = serde_json::Value::String(c.clone());
        }
        let body = serde_json::json!({"jsonrpc":"2.0","id":serde_json::from_str::<serde_json::Value>(&id).unwrap_or_default(),"method":"tools/list","params":params});
        let body = Bytes::from(serde_json::to_vec(&body).unwrap_or_default());
        let raw = serde_json::value::RawValue::from_string(id).expect("valid id");
        let expect = Expect::new(&down.chain, IdKey::from_raw(&raw), "tools/list", true);
        let mut sink = Inbound::new(&down, vec![expect]);
        let post = Post {
            headers: ctx.tools.headers_for(version, &body),
            body,
            session: None,
            idle,
            resumable: false,
            probe_era: false,
        };
        if !matches!(
            ctx.http.exchange(post, &mut sink).await,
            Outcome::Done { .. }
        ) {
            break;
        }
        cursor = sink
            .capture
            .as_ref()
            .and_then(|c| serde_json::from_slice::<serde_json::Value>(c).ok())
            .and_then(|v| v["result"]["nextCursor"].as_str().map(str::to_owned));
        if cursor.is_none() {
            break;
        }
    }
    drop(down);
    let _ = drain.await;
}

/// The initialize exchange (L-INIT), with the transport detection of B-DETECT.
pub(super) async fn initialize(ctx: &Ctx, msg: Outgoing, reinit: bool) -> InitResult {
    let body = if reinit {
        renumber(&msg.body)
    } else {
        msg.body.clone()
    };
    let expects = if reinit {
        vec![Expect::plain(renumbered_id())]
    } else {
        msg.expects.clone()
    };
    let requested = requested_version(&msg.body);
    match ctx.transport {
        TransportMode::Sse => return init_over_sse(ctx, msg, None, reinit).await,
        // mcp-remote's sse-first: HTTP+SSE, and Streamable HTTP when the SSE stream is
        // refused (404, 405) or is not an event stream.
        TransportMode::SseFirst => {
            match SseSession::connect(ctx.http.clone(), ctx.down.clone()).await {
                Ok(sse) => return init_on_sse(ctx, Arc::new(sse), msg, reinit).await,
                Err(e @ RemoteError::NotMcp { .. }) => {
                    tracing::info!(host = %ctx.http.host, "HTTP+SSE refused ({e}); trying Streamable HTTP");
                }
                Err(e) => {
                    report_failure(ctx, &msg.ids(), &e).await;
                    return InitResult::Failed(None);
                }
            }
        }
        TransportMode::Auto | TransportMode::StreamableHttp => {}
    }
    ctx.http.set_transport("Streamable HTTP");
    // A first initialize may meet a modern-only server: its answer is held until it is
    // known not to be that refusal (M-BRIDGE).
    let may_translate = !reinit && ctx.protocol != ProtocolMode::Legacy;
    let learned = ctx.modern_only.load(std::sync::atomic::Ordering::Relaxed);
    if may_translate && (ctx.protocol == ProtocolMode::Modern || learned) {
        return translate_initialize(ctx, &msg, &[]).await;
    }
    let mut sink = Inbound::new(&ctx.down, expects);
    if reinit || may_translate {
        sink = sink.quiet();
    }
    let outcome = post_initialize(ctx, &body, &mut sink).await;
    if may_translate && let Some(translated) = refused_legacy(ctx, &msg, &sink).await {
        return translated;
    }
    let (status, error) = match outcome {
        Outcome::Done { session_id } => {
            let version = sink.capture.as_deref().and_then(negotiated_version);
            let Some(version) = version else {
                // The server answered initialize with an error: no session. (The client
                // has it already when the initialize was the client's.)
                let why = sink
                    .capture
                    .as_deref()
                    .and_then(|c| serde_json::from_slice::<serde_json::Value>(c).ok())
                    .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "no result".into());
                return InitResult::Failed(Some(RemoteError::Other(format!(
                    "initialize was answered with an error: {why}"
                ))));
            };
            tracing::info!(host = %ctx.http.host, %version, "session initialized (Streamable HTTP)");
            let headers = SessionHeaders {
                session_id,
                protocol_version: Some(version),
            };
            if reinit {
                replay_initialized(ctx, &headers).await;
            }
            let answer = if reinit { sink.capture.clone() } else { None };
            return InitResult::Streamable { headers, answer };
        }
        Outcome::Unauthorized { .. } | Outcome::InsufficientScope { .. } => {
            unreachable!("handled by the sign-in loop above")
        }
        Outcome::OutputClosed => return InitResult::Failed(None),
        Outcome::SessionGone => (None, RemoteError::Other("unexpected 404".into())),
        Outcome::Status {
            status,
            modern,
            error,
            ..
        } => (Some((status, modern)), error),
        Outcome::Failed(e) | Outcome::LegacyOnly(e) => (None, e),
    };
    // A modern-only server may refuse a legacy initialize with a 400 that names the
    // version (header) instead of -32022: "Missing MCP-Protocol-Version header", say.
    if may_translate
        && matches!(status, Some((s, _)) if s == StatusCode::BAD_REQUEST)
        && names_version(&error)
    {
        ctx.modern_only
            .store(true, std::sync::atomic::Ordering::Relaxed);
        return translate_initialize(ctx, &msg, &[]).await;
    }
    // B-DETECT: 400/404/405 (and, before 2025-11-25, other 4xx) that is not a modern
    // error means an HTTP+SSE server. 401 starts sign-in instead; never a fallback.
    if let Some((status, modern)) = status
        && ctx.transport == TransportMode::Auto
        && !modern
        && fallback_status(status, requested.as_deref())
    {
        tracing::info!(host = %ctx.http.host, %status, "Streamable HTTP refused; trying HTTP+SSE");
        return init_over_sse(ctx, msg, Some(error), reinit).await;
    }
    if !reinit {
        report_failure(ctx, &sink.unanswered(), &error).await;
    }
    InitResult::Failed(Some(error))
}

/// POST the initialize, with the sign-in rounds it may need (A-401).
async fn post_initialize(ctx: &Ctx, body: &Bytes, sink: &mut Inbound<'_>) -> Outcome {
    let mut budget = AuthBudget::default();
    loop {
        let post = Post {
            body: body.clone(),
            headers: HeaderMap::new(),
            session: None,
            idle: Some(ctx.http.request_timeout),
            resumable: false,
            probe_era: false,
        };
        match ctx.http.exchange(post, sink).await {
            o @ (Outcome::Unauthorized { .. } | Outcome::InsufficientScope { .. }) => {
                if let Err(e) = budget.handle(&ctx.http, o).await {
                    return Outcome::Failed(e);
                }
            }
            o => return o,
        }
    }
}

/// A renewed session hears `initialized` before the retried message (L-INIT).
async fn replay_initialized(ctx: &Ctx, session: &SessionHeaders) {
    let mut headers = HeaderMap::new();
    session.apply(&mut headers);
    let post = Post {
        body: Bytes::from_static(INITIALIZED),
        headers,
        session: Some(session),
        idle: Some(ctx.http.request_timeout),
        resumable: false,
        probe_era: false,
    };
    let _ = ctx
        .http
        .exchange(post, &mut Inbound::new(&ctx.down, Vec::new()))
        .await;
}

/// The held answer to a first initialize: a refusal as an unsupported version means a
/// modern-only server, so the client is translated for (and that is remembered); any
/// other answer goes to the client as it came.
async fn refused_legacy(ctx: &Ctx, msg: &Outgoing, sink: &Inbound<'_>) -> Option<InitResult> {
    let answer = sink.capture.as_ref()?;
    match translate::refused_versions(answer) {
        Some(supported) => {
            ctx.modern_only
                .store(true, std::sync::atomic::Ordering::Relaxed);
            Some(translate_initialize(ctx, msg, &supported).await)
        }
        None => {
            let _ = ctx.down.out.send(one_line(answer.clone())).await;
            None
        }
    }
}

/// Answer a legacy client's `initialize` from the modern-only server's `server/discover`
/// (M-BRIDGE). `supported`: the versions the server named when it refused.
async fn translate_initialize(ctx: &Ctx, msg: &Outgoing, supported: &[String]) -> InitResult {
    let fail = |why: String| {
        RemoteError::Other(format!(
            "{} speaks only the 2026-07-28 protocol era, and translating for this client failed: {why}",
            ctx.http.host
        ))
    };
    let Some(version) = translate::modern_version(supported) else {
        let e = fail(format!("it supports only {}", supported.join(", ")));
        report_failure(ctx, &msg.ids(), &e).await;
        return InitResult::Failed(None);
    };
    let Some(t) = Translation::from_initialize(&msg.body, version) else {
        report_failure(
            ctx,
            &msg.ids(),
            &fail("the initialize had no params".into()),
        )
        .await;
        return InitResult::Failed(None);
    };
    tracing::info!(host = %ctx.http.host, "the server is modern-only; translating for this legacy client");
    let id = "clerk-mcp-server/discover";
    let body = t.discover(id);
    let raw = serde_json::value::RawValue::from_string(format!("{id:?}")).expect("valid id");
    let mut sink = Inbound::new(&ctx.down, vec![Expect::plain(IdKey::from_raw(&raw))]).quiet();
    // A server that wants a token for discover too gets the sign-in rounds (A-401).
    let mut budget = AuthBudget::default();
    let outcome = loop {
        let post = Post {
            headers: ctx.tools.headers_for(version, &body),
            body: body.clone(),
            session: None,
            idle: Some(ctx.http.request_timeout),
            resumable: false,
            probe_era: false,
        };
        match ctx.http.exchange(post, &mut sink).await {
            o @ (Outcome::Unauthorized { .. } | Outcome::InsufficientScope { .. }) => {
                if let Err(e) = budget.handle(&ctx.http, o).await {
                    break Outcome::Failed(e);
                }
            }
            o => break o,
        }
    };
    let discover = sink
        .capture
        .as_deref()
        .and_then(|c| serde_json::from_slice::<serde_json::Value>(c).ok());
    let result = match (outcome, discover) {
        (Outcome::Done { .. }, Some(v)) if v.get("result").is_some() => v["result"].clone(),
        (Outcome::Done { .. }, Some(v)) => {
            let why = v["error"]["message"]
                .as_str()
                .unwrap_or("an error")
                .to_owned();
            report_failure(
                ctx,
                &msg.ids(),
                &fail(format!("server/discover answered {why}")),
            )
            .await;
            return InitResult::Failed(None);
        }
        (Outcome::Failed(e) | Outcome::Status { error: e, .. }, _) => {
            report_failure(ctx, &msg.ids(), &fail(format!("server/discover: {e}"))).await;
            return InitResult::Failed(None);
        }
        _ => {
            report_failure(
                ctx,
                &msg.ids(),
                &fail("server/discover had no answer".into()),
            )
            .await;
            return InitResult::Failed(None);
        }
    };
    t.set_server_capabilities(result.get("capabilities").cloned().unwrap_or_default());
    let requested = requested_version(&msg.body);
    for id in msg.ids() {
        let line = translate::initialize_answer(&id, requested.as_deref(), &result);
        let _ = ctx.down.out.send(line).await;
    }
    ctx.http
        .set_transport("Streamable HTTP (2026-07-28, translated for a legacy client)");
    InitResult::Translated(Arc::new(t))
}

/// Whether an error names the protocol version (its header, or the value).
fn names_version(error: &RemoteError) -> bool {
    let text = error.to_string().to_ascii_lowercase();
    text.contains("protocol-version") || text.contains("protocol version")
}

fn fallback_status(status: StatusCode, requested: Option<&str>) -> bool {
    match status.as_u16() {
        400 | 404 | 405 => true,
        401 | 403 | 406 | 415 | 429 => false,
        s if (400..500).contains(&s) => requested.is_some_and(|v| v < "2025-11-25"),
        _ => false,
    }
}

async fn init_over_sse(
    ctx: &Ctx,
    msg: Outgoing,
    first: Option<RemoteError>,
    reinit: bool,
) -> InitResult {
    let sse = match SseSession::connect(ctx.http.clone(), ctx.down.clone()).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let e = match first {
                Some(f) => RemoteError::Other(format!("{f}; HTTP+SSE fallback also failed: {e}")),
                // Only HTTP+SSE was tried: the endpoint may well be Streamable HTTP.
                None => RemoteError::Other(format!(
                    "{e} (--transport sse; leave it out if the server speaks Streamable HTTP)"
                )),
            };
            report_failure(ctx, &msg.ids(), &e).await;
            return InitResult::Failed(None);
        }
    };
    init_on_sse(ctx, sse, msg, reinit).await
}

/// The initialize on an open HTTP+SSE session.
async fn init_on_sse(ctx: &Ctx, sse: Arc<SseSession>, msg: Outgoing, reinit: bool) -> InitResult {
    ctx.http.set_transport("HTTP+SSE (2024-11-05)");
    let (body, expects) = if reinit {
        (renumber(&msg.body), vec![Expect::plain(renumbered_id())])
    } else {
        (msg.body, msg.expects)
    };
    let answered = sse.send(body, expects, !reinit, Some(ctx.http.request_timeout));
    match answered.await {
        Ok(kept) => {
            if reinit {
                // Replay `initialized`; its POST is queued before anything else, and
                // nothing waits for an answer to it.
                let note = Bytes::from_static(INITIALIZED);
                drop(sse.send(note, Vec::new(), true, None));
            }
            InitResult::Sse {
                session: sse,
                answer: kept.into_iter().next(),
            }
        }
        Err((ids, e)) => {
            report_failure(ctx, &ids, &e).await;
            InitResult::Failed(Some(e))
        }
    }
}

async fn report_failure(ctx: &Ctx, ids: &[IdKey], error: &RemoteError) {
    for id in ids {
        tracing::warn!(%id, "initialize failed: {error}");
        let line =
            jsonrpc::error_response(Some(id), jsonrpc::code::TRANSPORT_ERROR, &error.to_string());
        let _ = ctx.down.out.send(Bytes::from(line)).await;
    }
}

fn requested_version(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let jsonrpc::Parsed::Single(m) = jsonrpc::parse(text).ok()? else {
        return None;
    };
    ParamsProbe::of(m.params)
        .protocol_version
        .map(|v| v.into_owned())
}

fn negotiated_version(response: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(response).ok()?;
    v.get("result")?
        .get("protocolVersion")?
        .as_str()
        .map(str::to_owned)
}

const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

const REINIT_ID: &str = "\"clerk-mcp-server/reinitialize\"";

fn renumbered_id() -> IdKey {
    let raw = serde_json::value::RawValue::from_string(REINIT_ID.to_owned()).expect("valid id");
    IdKey::from_raw(&raw)
}

/// The kept initialize with our own id, so its response is never mistaken for the client's.
fn renumber(body: &[u8]) -> Bytes {
    let mut v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return Bytes::copy_from_slice(body),
    };
    v["id"] = serde_json::from_str(REINIT_ID).unwrap_or_default();
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}
