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
use crate::remote::http::Http;

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let (args, check) = match &cli.command {
        Some(Command::Check(args)) => (args, true),
        None => (&cli.remote, false),
    };
    if let Err(e) = init_logging(args, check) {
        eprintln!("clerk-mcp-server: {e}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
        if check {
            crate::check::run(args).await
        } else {
            proxy(args).await
        }
    });
    // Don't wait for blocked stdin reads: the process is done.
    runtime.shutdown_background();
    match result {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("clerk-mcp-server: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

async fn proxy(args: &RemoteArgs) -> anyhow::Result<ExitCode> {
    let config = Arc::new(Config::from_args(args)?);
    let client = crate::remote::build_client(&config)?;
    let http = Arc::new(Http::new(client, &config));
    tracing::info!(
        url = %redact_url(&config.url),
        version = env!("CARGO_PKG_VERSION"),
        "clerk-mcp-server ready"
    );
    crate::proxy::run(
        config,
        http,
        tokio::io::stdin(),
        tokio::io::stdout(),
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
    let default = if check { "warn" } else { "info" };
    let filter = match (&args.log_level, std::env::var("RUST_LOG").ok()) {
        (Some(level), _) => EnvFilter::try_new(level).map_err(|e| ConfigError::Invalid {
            flag: "--log-level",
            why: e.to_string(),
        })?,
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
    match &args.log_file {
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
                .with_writer(std::io::stderr.and(file))
                .init();
        }
        None => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init(),
    }
    Ok(())
}
