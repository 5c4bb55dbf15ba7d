//! Multi-round requests (MRTR, 2026-07-28) for a translated session: a legacy client
//! knows no `input_required` result, so the proxy puts each input request to the client
//! as the server→client request it knows (elicitation, sampling, roots), then re-issues
//! the original request with the answers and the server's `requestState`. The client
//! sees one request and one final answer, under its own id.

use serde_json::{Map, Value, json};
use tokio::sync::oneshot;

use super::*;
use crate::layer::translate::{self, InputError, Translation};

/// Rounds of input one request may take.
pub(super) const MAX_ROUNDS: u32 = 10;

/// What to do with a translated request's answer.
enum Step {
    /// It is the final answer: hand it to the client.
    Deliver,
    /// Send the request again with this body.
    Retry(Bytes),
    /// The request ends with this error (`None`: the client was already answered).
    Failed(Option<RemoteError>),
}

/// Answers the client owes the proxy, by the id of the request the proxy put to it.
#[derive(Default)]
pub(super) struct Answers(std::sync::Mutex<HashMap<IdKey, oneshot::Sender<Bytes>>>);

impl Answers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdKey, oneshot::Sender<Bytes>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A client response to one of the proxy's requests: taken here, never forwarded.
    pub(super) fn take(&self, id: &IdKey, line: Bytes) -> bool {
        match self.lock().remove(id) {
            Some(tx) => {
                let _ = tx.send(line);
                true
            }
            None => false,
        }
    }

    fn expect(&self, id: IdKey) -> oneshot::Receiver<Bytes> {
        let (tx, rx) = oneshot::channel();
        self.lock().insert(id, tx);
        rx
    }

    fn forget(&self, ids: &[IdKey]) {
        let mut map = self.lock();
        for id in ids {
            map.remove(id);
        }
    }
}

/// A translated request's held answer: delivered when final (and remembered, for lists
/// with `ttlMs`), or the input it asks for gathered and the request sent again
/// (`Continue`, with `msg.body` the next round's).
pub(super) async fn settle(
    ctx: &Ctx,
    msg: &mut Outgoing,
    t: &Translation,
    answer: Bytes,
    rounds: &mut u32,
) -> std::ops::ControlFlow<Event> {
    let finished = |unanswered, error| {
        std::ops::ControlFlow::Break(Event::Finished {
            unit: msg.unit,
            unanswered,
            error,
        })
    };
    match step(ctx, msg, t, &answer, rounds).await {
        Step::Deliver => {
            if let Ok(raw) = std::str::from_utf8(&msg.body) {
                t.remember(&msg.method, raw, &answer);
            }
            let hook = msg.expects.first().and_then(|e| e.hook.as_ref());
            let _ = ctx.down.write_answer(answer, hook).await;
            finished(Vec::new(), None)
        }
        Step::Retry(body) => {
            msg.body = body;
            std::ops::ControlFlow::Continue(())
        }
        // `None`: the client was already answered.
        Step::Failed(None) => finished(Vec::new(), None),
        Step::Failed(error) => finished(msg.ids(), error),
    }
}

/// One round: read `answer`; when it asks for input, get it from the client.
async fn step(ctx: &Ctx, msg: &Outgoing, t: &Translation, answer: &[u8], round: &mut u32) -> Step {
    let input = match translate::input_required(answer, t.capabilities(), ctx.http.max_message) {
        None => return Step::Deliver,
        Some(Ok(input)) => input,
        Some(Err(e @ InputError::Missing { .. })) => {
            // As the SDKs answer a request their client cannot serve.
            for id in msg.ids() {
                let line = jsonrpc::error_response(
                    Some(&id),
                    jsonrpc::code::MISSING_CLIENT_CAPABILITY,
                    &e.to_string(),
                );
                let _ = ctx.down.out.send(Bytes::from(line)).await;
            }
            return Step::Failed(None);
        }
        Some(Err(e)) => return Step::Failed(Some(RemoteError::Other(e.to_string()))),
    };
    *round += 1;
    if *round > MAX_ROUNDS {
        return Step::Failed(Some(RemoteError::Other(format!(
            "{} asked for input more than {MAX_ROUNDS} times for one request; gave up",
            ctx.http.host
        ))));
    }
    let responses = if input.requests.is_empty() {
        // Only state: the server is not ready yet. Ask again after a short, growing pause.
        let pause = Duration::from_millis(u64::from(*round) * 50).min(Duration::from_millis(250));
        tokio::time::sleep(pause).await;
        Map::new()
    } else {
        match ask_client(ctx, msg.unit, *round, input.requests).await {
            Ok(r) => r,
            Err(e) => return Step::Failed(Some(e)),
        }
    };
    match translate::reissue(&msg.body, responses, input.state.as_deref()) {
        Some(body) => Step::Retry(body),
        None => Step::Failed(Some(RemoteError::Other(
            "could not re-issue the request with the client's input".into(),
        ))),
    }
}

/// Put each input request to the client and collect its results by key.
async fn ask_client(
    ctx: &Ctx,
    unit: UnitId,
    round: u32,
    requests: Vec<(String, Value)>,
) -> Result<Map<String, Value>, RemoteError> {
    // Forgets the ids however this ends, a cancellation (abort) included.
    let mut asked = Asked {
        answers: &ctx.answers,
        ids: Vec::with_capacity(requests.len()),
    };
    let mut pending = Vec::with_capacity(requests.len());
    for (key, request) in requests {
        let id = json!(format!("clerk-mcp-server/input/{unit}/{round}/{key}"));
        let raw = serde_json::value::RawValue::from_string(id.to_string()).expect("a JSON string");
        let id_key = IdKey::from_raw(&raw);
        let rx = ctx.answers.expect(id_key.clone());
        asked.ids.push(id_key);
        let method = request["method"].as_str().unwrap_or_default().to_owned();
        let line = json!({"jsonrpc":"2.0","id":id,"method":method,
                          "params":request.get("params").cloned().unwrap_or_else(|| json!({}))});
        if ctx
            .down
            .out
            .send(Bytes::from(line.to_string()))
            .await
            .is_err()
        {
            return Err(RemoteError::Other("the client's stdout is closed".into()));
        }
        pending.push((key, method, rx));
    }
    collect(ctx, pending).await
}

/// The proxy's open questions to the client, forgotten when the round ends.
struct Asked<'a> {
    answers: &'a Answers,
    ids: Vec<IdKey>,
}

impl Drop for Asked<'_> {
    fn drop(&mut self) {
        self.answers.forget(&self.ids);
    }
}

async fn collect(
    ctx: &Ctx,
    pending: Vec<(String, String, oneshot::Receiver<Bytes>)>,
) -> Result<Map<String, Value>, RemoteError> {
    let mut responses = Map::new();
    for (key, method, rx) in pending {
        let line = match tokio::time::timeout(ctx.http.request_timeout, rx).await {
            Ok(Ok(line)) => line,
            _ => {
                return Err(RemoteError::Other(format!(
                    "the client did not answer the server's {method} within {} s \
                     (--request-timeout)",
                    ctx.http.request_timeout.as_secs_f64()
                )));
            }
        };
        let answer: Value = serde_json::from_slice(&line).unwrap_or_default();
        match (answer.get("result"), answer.get("error")) {
            (Some(result), _) => {
                responses.insert(key, result.clone());
            }
            (None, error) => {
                let why = error
                    .and_then(|e| e.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("no result");
                return Err(RemoteError::Other(format!(
                    "the client answered the server's {method} with an error: {why}"
                )));
            }
        }
    }
    Ok(responses)
}
