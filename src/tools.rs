//! `clerk-mcp-server tools URL [--accept [TOOL]]`: the server's tools against their
//! pinned definitions (`--pin-tools`), with a diff of each changed field; `--accept`
//! pins the current definitions of one tool, or of all.

use std::process::ExitCode;
use std::sync::Arc;

use serde_json::Value;

use crate::cli::ToolsArgs;
use crate::config::{Config, redact_url};
use crate::layer::pinning::{self, FIELDS, Pin, PinFile};
use crate::layer::tool_name;

/// What a tool's pin says of its current definition.
#[derive(Debug, PartialEq, Eq)]
enum State {
    Unchanged,
    Changed(Vec<&'static str>),
    New,
}

pub(crate) async fn run(args: &ToolsArgs) -> anyhow::Result<ExitCode> {
    let mut config = Config::from_args(&args.remote)?;
    // The server's own list, untouched: no policy, no pinning on this connection.
    config.tools = Default::default();
    config.pin_tools = false;
    let config = Arc::new(config);
    let path = pinning::pin_path(&config.auth.config_dir, &config.url);
    let mut file = pinning::load(&path).map_err(|why| {
        anyhow::anyhow!("{why}. Fix the file, or remove it to pin the server's tools afresh")
    })?;
    let http = crate::connect::connect(&config)?;
    let mut session = crate::inproc::InProcess::start(config.clone(), http);
    let listed = async {
        session
            .initialize("clerk-mcp-server tools")
            .await?
            .map_err(|why| anyhow::anyhow!("initialize failed: {why}"))?;
        session.list_tools().await
    }
    .await;
    session.finish().await;
    let tools = listed?;
    let server = redact_url(&config.url);
    println!("Tools of {server}");
    println!("Pin file: {}", path.display());
    let states: Vec<(&Value, State)> = tools.iter().map(|t| (t, state(&file, t))).collect();
    report(&file, &tools, &states);
    let Some(accept) = &args.accept else {
        if states.iter().any(|(_, s)| *s != State::Unchanged) {
            println!(
                "\nTo trust the current definitions: clerk-mcp-server tools {server} --accept [TOOL]"
            );
        }
        return Ok(ExitCode::SUCCESS);
    };
    let chosen: Vec<&Value> = states
        .iter()
        .filter(|(t, s)| *s != State::Unchanged && (accept == "*" || tool_name(t) == accept))
        .map(|(t, _)| *t)
        .collect();
    if chosen.is_empty() {
        let known = tools.iter().any(|t| tool_name(t) == accept);
        anyhow::bail!(match (accept.as_str(), known) {
            ("*", _) => "nothing to accept: every tool matches its pin".to_owned(),
            (_, true) => format!("nothing to accept: {accept:?} matches its pin"),
            (_, false) => format!("the server offers no tool named {accept:?}"),
        });
    }
    file.version = 1;
    file.server = server;
    for tool in &chosen {
        file.tools.insert(tool_name(tool).to_owned(), Pin::of(tool));
    }
    pinning::save(&path, &file)
        .map_err(|e| anyhow::anyhow!("cannot write the pin file {}: {e}", path.display()))?;
    for tool in chosen {
        println!("accepted: {}", tool_name(tool));
    }
    Ok(ExitCode::SUCCESS)
}

fn state(file: &PinFile, tool: &Value) -> State {
    match file.tools.get(tool_name(tool)) {
        None => State::New,
        Some(pin) => match pin.changed_fields(tool) {
            fields if fields.is_empty() => State::Unchanged,
            fields => State::Changed(fields),
        },
    }
}

fn report(file: &PinFile, tools: &[Value], states: &[(&Value, State)]) {
    if tools.is_empty() && file.tools.is_empty() {
        println!("  (the server offers no tools)");
    }
    for (tool, st) in states {
        let name = tool_name(tool);
        match st {
            State::Unchanged => println!("  ✓ {name}: pinned, unchanged"),
            State::New => println!("  + {name}: new, not pinned yet"),
            State::Changed(fields) => {
                println!("  ✗ {name}: changed since pinned ({})", fields.join(", "));
                let pinned = &file.tools[name].definition;
                for field in fields {
                    println!("      {field}:");
                    for line in diff(&pretty(pinned.get(*field)), &pretty(tool.get(*field))) {
                        println!("        {line}");
                    }
                }
            }
        }
    }
    for name in file.tools.keys() {
        if !tools.iter().any(|t| tool_name(t) == name) {
            println!("  - {name}: pinned, no longer offered by the server");
        }
    }
    debug_assert!(FIELDS.len() == 5);
}

fn pretty(v: Option<&Value>) -> Vec<String> {
    match v {
        None => vec!["(absent)".to_owned()],
        Some(v) => serde_json::from_str::<Value>(&pinning::canonical(v))
            .ok()
            .and_then(|v| serde_json::to_string_pretty(&v).ok())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect(),
    }
}

/// A line diff ("- " pinned, "+ " now, "  " both), by longest common subsequence. Tool
/// fields are small; past a bound both sides are shown whole instead.
fn diff(old: &[String], new: &[String]) -> Vec<String> {
    const MAX_CELLS: usize = 4_000_000;
    if old.len().saturating_mul(new.len()) > MAX_CELLS {
        let mut out: Vec<String> = old.iter().map(|l| format!("- {l}")).collect();
        out.extend(new.iter().map(|l| format!("+ {l}")));
        return out;
    }
    // lcs[i][j]: the common length of old[i..] and new[j..].
    let mut lcs = vec![vec![0usize; new.len() + 1]; old.len() + 1];
    for i in (0..old.len()).rev() {
        for j in (0..new.len()).rev() {
            lcs[i][j] = if old[i] == new[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            out.push(format!("  {}", old[i]));
            (i, j) = (i + 1, j + 1);
        } else if j < new.len() && (i == old.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("+ {}", new[j]));
            j += 1;
        } else {
            out.push(format!("- {}", old[i]));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<String> {
        s.lines().map(str::to_owned).collect()
    }

    #[test]
    fn diff_marks_removed_and_added_lines() {
        let d = diff(&lines("a\nb\nc"), &lines("a\nx\nc\nd"));
        assert_eq!(d, ["  a", "+ x", "- b", "  c", "+ d"]);
        assert_eq!(diff(&lines("same"), &lines("same")), ["  same"]);
    }

    #[test]
    fn states_follow_the_pins() {
        let tool = serde_json::json!({"name":"t","description":"d"});
        let mut file = PinFile::default();
        assert_eq!(state(&file, &tool), State::New);
        file.tools.insert("t".into(), Pin::of(&tool));
        assert_eq!(state(&file, &tool), State::Unchanged);
        let changed = serde_json::json!({"name":"t","description":"e"});
        assert_eq!(state(&file, &changed), State::Changed(vec!["description"]));
    }
}
