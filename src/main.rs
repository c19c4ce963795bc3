//! `warren [--config PATH]`: loads the configuration, starts the broker and runs until SIGINT
//! or SIGTERM.
//!
//! Exit status: 0 after a signal, 1 if the server cannot start, 2 for a bad command line or
//! configuration.

use clap::Parser;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::EnvFilter;
use warren::config::{Config, LogFormat};

/// Warren: an AMQP 0-9-1 message broker, a drop-in replacement for RabbitMQ.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Config file (TOML). Without it, conf/warren.toml in the working directory is read if it
    /// exists. WARREN_<SECTION>__<KEY> environment variables override the file.
    #[arg(short, long, value_name = "PATH")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();

    let config = match Config::load(args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("warren: {e}");
            return ExitCode::from(2);
        }
    };

    // RUST_LOG, when set, overrides log.level (which Config::load has checked).
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => match EnvFilter::try_new(&directives) {
            Ok(filter) => filter,
            Err(e) => {
                eprintln!("warren: invalid RUST_LOG {directives:?}: {e}");
                return ExitCode::from(2);
            }
        },
        _ => EnvFilter::new(&config.log.level),
    };
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => logger.with_ansi(std::io::stderr().is_terminal()).init(),
        // Flat objects (the event's fields beside `message`, the innermost span's fields
        // under `span`): what log shippers index without a parsing rule.
        LogFormat::Json => logger
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("warren")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(config))
}

async fn run(config: Config) -> ExitCode {
    // Install the handlers before starting, so that a signal during start-up is not lost.
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(sigint), Ok(sigterm)) => (sigint, sigterm),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };

    let handle = match warren::server::start(config).await {
        Ok(handle) => handle,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match handle.tls_addr {
        Some(tls) => tracing::info!(
            "Warren listening on {} and on {tls} (TLS)",
            handle.local_addr
        ),
        None => tracing::info!("Warren listening on {}", handle.local_addr),
    }

    let signal_name = tokio::select! {
        _ = sigint.recv() => "SIGINT",
        _ = sigterm.recv() => "SIGTERM",
    };
    tracing::info!("received {signal_name}, shutting down");

    handle.shutdown().await;

    tracing::info!("Warren stopped");
    ExitCode::SUCCESS
}
