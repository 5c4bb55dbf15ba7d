//! A randomized invariant test: generated interleavings of client requests, notifications,
//! server requests (elicitation) and injected faults, all written at once, through the real
//! binary. Whatever the mix:
//! - every request gets exactly one response (a result or a JSON-RPC error);
//! - order is kept within each stream (progress 1..n before its result);
//! - nothing but complete JSON-RPC lines reaches stdout (checked by `Proxy::recv`).
//!
//! Reproducible: each run prints its seed ("proptest seed: N"; libtest shows it when the
//! test fails), and `PROPTEST_RNG_SEED=N cargo test --test it invariants::` replays that
//! run. A failing case is also saved in tests/it/proptest-regressions/invariants.txt,
//! which is committed: every later run tries the saved cases first.

use std::collections::HashMap;

use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, RngSeed};
use serde_json::{Value, json};

use crate::support::mock::{Mock, Options};
use crate::support::{Proxy, call};

#[derive(Clone, Debug)]
enum Action {
    Echo,
    Progress(u8),
    Slow(u8),
    Status(u16),
    Garbage,
    CutNoResume,
    Cut,
    Elicit,
    Notification,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => Just(Action::Echo),
        2 => (1u8..6).prop_map(Action::Progress),
        1 => (0u8..40).prop_map(Action::Slow),
        1 => prop_oneof![Just(400u16), Just(404), Just(500), Just(503)].prop_map(Action::Status),
        1 => Just(Action::Garbage),
        1 => Just(Action::CutNoResume),
        1 => Just(Action::Cut),
        1 => Just(Action::Elicit),
        1 => Just(Action::Notification),
    ]
}

async fn run_case(actions: Vec<Action>, sse: bool) {
    let mock = Mock::start(Options {
        sse_always: sse,
        ..Default::default()
    })
    .await;
    let mut p = Proxy::spawn(&[&mock.url]);
    p.initialize("2025-11-25").await;
    let mut batch = String::new();
    let mut expected: HashMap<i64, Option<u8>> = HashMap::new();
    for (i, a) in actions.iter().enumerate() {
        let id = i as i64 + 1;
        let line = match a {
            Action::Echo => call(id, "echo", json!({"i": id})),
            Action::Progress(n) => json!({"jsonrpc":"2.0","id":id,"method":"tools/call",
                "params":{"name":"progress","arguments":{"n":n},"_meta":{"progressToken":id}}})
            .to_string(),
            Action::Slow(ms) => call(id, "slow", json!({"ms": ms})),
            Action::Status(code) => call(id, "status", json!({"code": code, "body": "fault"})),
            Action::Garbage => call(id, "garbage", json!({})),
            Action::CutNoResume => call(id, "cut_noresume", json!({})),
            Action::Cut => call(id, "cut", json!({})),
            Action::Elicit => call(id, "elicit", json!({})),
            Action::Notification => {
                batch.push_str(r#"{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}"#);
                batch.push('\n');
                continue;
            }
        };
        expected.insert(
            id,
            if let Action::Progress(n) = a {
                Some(*n)
            } else {
                None
            },
        );
        batch.push_str(&line);
        batch.push('\n');
    }
    p.send_raw(batch.as_bytes()).await;
    let mut answered: HashMap<i64, usize> = HashMap::new();
    let mut progress: HashMap<i64, Vec<i64>> = HashMap::new();
    while answered.len() < expected.len() {
        let v: Value = p.recv().await;
        match (v.get("method").and_then(Value::as_str), v.get("id")) {
            (Some("elicitation/create"), Some(id)) => {
                // Answer the server's request, as a client would.
                p.send(
                    &json!({"jsonrpc":"2.0","id":id,"result":{"action":"accept","content":{}}})
                        .to_string(),
                )
                .await;
            }
            (Some("notifications/progress"), _) => {
                let token = v["params"]["progressToken"].as_i64().unwrap();
                assert!(
                    !answered.contains_key(&token),
                    "progress after the response: {v}"
                );
                progress
                    .entry(token)
                    .or_default()
                    .push(v["params"]["progress"].as_i64().unwrap());
            }
            (Some(_), _) => {}
            (None, Some(id)) => {
                let id = id
                    .as_i64()
                    .unwrap_or_else(|| panic!("unexpected response id: {v}"));
                assert!(
                    expected.contains_key(&id),
                    "a response for an id never sent: {v}"
                );
                *answered.entry(id).or_insert(0) += 1;
            }
            (None, None) => panic!("a line that is neither message nor response: {v}"),
        }
    }
    let rest = p.rest_after_eof().await;
    for v in &rest {
        assert!(
            v.get("id").is_none() || v.get("method").is_some(),
            "a second response: {v}"
        );
    }
    assert!(answered.values().all(|&n| n == 1), "{answered:?}");
    for (id, n) in expected.iter().filter_map(|(id, n)| n.map(|n| (*id, n))) {
        let seen = progress.get(&id).cloned().unwrap_or_default();
        assert_eq!(
            seen,
            (1..=n as i64).collect::<Vec<_>>(),
            "progress of {id} in order"
        );
    }
}

/// Where failing cases are saved (proptest creates the file at the first failure).
const REGRESSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/it/proptest-regressions/invariants.txt"
);

/// The property tests' configuration: 12 cases, failures saved in `regressions`, and a
/// seed that is printed: PROPTEST_RNG_SEED if set, else a fresh one (a Random seed would
/// be drawn inside proptest and never shown).
fn config(regressions: &'static str) -> ProptestConfig {
    let mut config = ProptestConfig {
        cases: 12,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..ProptestConfig::default() // reads the PROPTEST_* variables
    };
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos(),
            );
            h.finish()
        }
    };
    config.rng_seed = RngSeed::Fixed(seed);
    eprintln!(
        "proptest seed: {seed} (rerun: PROPTEST_RNG_SEED={seed} cargo test --test it invariants::)"
    );
    config
}

/// The guard on `config`: a failure is saved and tried first on the next run, and the
/// seed is fixed, so the same seed draws the same cases. With `failure_persistence:
/// None` or a Random seed, this fails.
#[test]
fn property_failures_are_saved_and_seeds_replay() {
    use proptest::test_runner::{TestCaseError, TestRunner};
    let dir = tempfile::tempdir().unwrap();
    let file: &'static str = Box::leak(
        dir.path()
            .join("regressions.txt")
            .to_str()
            .unwrap()
            .to_owned()
            .into_boxed_str(),
    );
    let draws = |config: ProptestConfig| {
        let seen = std::cell::RefCell::new(Vec::new());
        let mut runner = TestRunner::new(config);
        let result = runner.run(&(0u32..1_000_000), |x| {
            seen.borrow_mut().push(x);
            if x >= 10 {
                Err(TestCaseError::fail("x >= 10"))
            } else {
                Ok(())
            }
        });
        (result.is_err(), seen.into_inner())
    };
    let config = config(file);
    let RngSeed::Fixed(seed) = config.rng_seed else {
        panic!("the seed is fixed (and printed), not {}", config.rng_seed)
    };
    let (failed, first) = draws(config.clone());
    assert!(failed, "the property fails (at once, almost surely)");
    let saved = std::fs::read_to_string(file).unwrap_or_default();
    assert!(
        saved.lines().any(|l| l.starts_with("cc ")),
        "the failure is saved in {file}: {saved:?}"
    );
    // Another seed would draw another first case, unless the saved one is tried first.
    let mut other = config.clone();
    other.rng_seed = RngSeed::Fixed(seed.wrapping_add(1));
    let (_, again) = draws(other);
    assert_eq!(again[0], first[0], "the saved failure is tried first");
    // Without the saved file, the same seed draws the same cases.
    std::fs::remove_file(file).unwrap();
    let (_, replay) = draws(config);
    assert_eq!(first, replay, "the same seed draws the same cases");
}

proptest! {
    #![proptest_config(config(REGRESSIONS))]
    #[test]
    fn every_request_answered_once_in_order(actions in prop::collection::vec(action(), 1..24), sse in any::<bool>()) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(run_case(actions, sse));
    }
}
