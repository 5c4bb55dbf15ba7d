//! Wiring for `main`: parse flags, set up logging on stderr (never stdout), run the
//! chosen command, and map the result to an exit code in one place.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt;

use crate::cli::{Cli, Command, RemoteArgs};
use crate::config::{Config, redact_url};
use crate::error::{ConfigError, exit_code};

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            eprintln!("clerk-mcp-server: {}", one_line(&e));
            return ExitCode::from(2);
        }
    };
    if let Some(Command::SelfUpdate(a)) = &cli.command {
        // Blocking HTTP: deliberately outside any async runtime.
        return match crate::update::run(a) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("clerk-mcp-server: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    let (args, quiet) = match &cli.command {
        Some(Command::Check(args) | Command::Login(args)) => (args, true),
        Some(Command::Logout(a)) => (&a.remote, true),
        Some(Command::Tools(a)) => (&a.remote, true),
        Some(Command::Status(_) | Command::SelfUpdate(_)) => (&cli.remote, true),
        None => (&cli.remote, false),
    };
    if let Err(e) = init_logging(args, quiet) {
        eprintln!("clerk-mcp-server: {e}");
        return ExitCode::from(2);
    }
    // One thread: a proxy's work per message is a few microseconds, and hand-offs between
    // worker threads (a futex wake each) cost more than that: a same-run A/B showed lower
    // latency with one worker than with two, at the same throughput (bench/ab.sh keeps
    // such comparisons as bench/results/ab-NAME.json). Blocking work (file locks, DNS)
    // goes to the blocking pool.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("clerk-mcp-server: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            None => proxy(args).await,
            Some(Command::Check(args)) => crate::check::run(args).await,
            Some(Command::Login(args)) => crate::accounts::login(args).await,
            Some(Command::Logout(a)) => crate::accounts::logout(a).await,
            Some(Command::Tools(a)) => crate::tools::run(a).await,
            Some(Command::Status(a)) => crate::accounts::status(a),
            Some(Command::SelfUpdate(_)) => unreachable!("handled before the runtime starts"),
        }
    });
    // Don't wait for blocked stdin reads: the process is done.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line on stderr; the --log-file gets it too, as a log event.
            tracing::error!(target: EXIT_TARGET, "{e:#}");
            eprintln!("clerk-mcp-server: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// A usage error from clap, on one line: its message, the possible values and tips
/// joined, without the "For more information" footer.
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("For more information")
                && !l.starts_with("Usage:")
                && !l.starts_with("tip: to pass")
        })
        .map(|l| l.strip_prefix("error: ").unwrap_or(l))
        .collect();
    format!("{} (see --help)", parts.join("; "))
}

/// The target of the final error's log event, which stderr leaves out: the same error
/// is printed there once, as a plain line.
const EXIT_TARGET: &str = "clerk_mcp_server::exit";

async fn proxy(args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::from_args(args)?);
    let http = crate::connect::connect(&config)?;
    if let Some(auth) = http.auth.clone() {
        // Sign in right away when the server needs it (no MCP session is opened for
        // this: only the metadata is read).
        tokio::spawn(crate::auth::probe::sign_in_at_startup(http.clone(), auth));
    }
    tracing::info!(
        url = %redact_url(&config.url),
        version = env!("CARGO_PKG_VERSION"),
        "clerk-mcp-server ready"
    );
    if std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        // Started by hand: nothing will come unless an MCP client speaks on stdin.
        tracing::info!(
            "waiting for an MCP client on stdin; an MCP client (Claude Desktop, Cursor...) \
             starts this program itself. To try the server by hand, run \
             `clerk-mcp-server check {}`",
            redact_url(&config.url)
        );
    }
    crate::proxy::run(
        config,
        http,
        crate::stdio::input(),
        crate::stdio::output(),
        shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT or SIGTERM (Ctrl-C on Windows).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn init_logging(args: &RemoteArgs, check: bool) -> Result<(), ConfigError> {
    // `check` and the other commands print their own outcome: the proxy's warnings
    // about the same failures would only repeat it.
    let default = if check {
        "warn,clerk_mcp_server::proxy=error"
    } else {
        "info"
    };
    let filter = match (&args.log_level, std::env::var("RUST_LOG").ok()) {
        // mcp-remote's switches; --log-level says more and wins.
        (None, _) if args.debug => EnvFilter::new("debug"),
        (None, _) if args.silent => EnvFilter::new("error"),
        (Some(level), _) => log_filter(level)?,
        (None, Some(env)) if !env.is_empty() => {
            EnvFilter::try_new(env).unwrap_or_else(|_| EnvFilter::new(default))
        }
        _ => EnvFilter::new(default),
    };
    // Dependencies are quiet unless asked for by name.
    let filter = filter
        .add_directive("hyper=warn".parse().expect("static directive"))
        .add_directive("h2=warn".parse().expect("static directive"))
        .add_directive("rustls=warn".parse().expect("static directive"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let stderr = std::io::stderr.with_filter(|m: &tracing::Metadata<'_>| m.target() != EXIT_TARGET);
    // --debug: also a debug.log in the config directory, as mcp-remote keeps one.
    let debug_log = match (&args.log_file, args.debug) {
        (None, true) => args
            .auth
            .config_dir
            .clone()
            .or_else(crate::auth::store::default_dir)
            .map(|d| d.join("debug.log")),
        _ => None,
    };
    if let Some(dir) = debug_log.as_ref().and_then(|p| p.parent()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        let _ = builder.create(dir);
    }
    match args.log_file.as_ref().or(debug_log.as_ref()) {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| ConfigError::LogFile {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
            let file = std::sync::Mutex::new(file);
            builder
                .with_ansi(false)
                .with_writer(stderr.and(file))
                .init();
        }
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(stderr)
            .init(),
    }
    if let Some(path) = &debug_log {
        tracing::info!("debug log: {}", path.display());
    }
    Ok(())
}

/// `--log-level`: a level, or a tracing directive such as `clerk_mcp_server=debug,warn`.
/// A bare word that is not a level would be read as a target name and silence every
/// log, so it is refused.
fn log_filter(level: &str) -> Result<EnvFilter, ConfigError> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let invalid = |why: String| ConfigError::Invalid {
        flag: "--log-level",
        why,
    };
    let word = level.trim().to_ascii_lowercase();
    if !word.contains(['=', ',', ':', '[']) && !LEVELS.contains(&word.as_str()) {
        return Err(invalid(format!(
            "{level:?} is not a level; use one of {}",
            LEVELS.join(", ")
        )));
    }
    EnvFilter::try_new(level).map_err(|e| invalid(e.to_string()))
}
