//! The `api` binary: serves the gold layer of an output location.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use api::{Access, Budget, State, Tls};
use clap::{Parser, Subcommand};
use pipeline::config::{ApiFlags, ConfigFile, Overrides, PipelineFlags};
use pipeline::storage::Storage;
use tracing_subscriber::EnvFilter;

/// minutely API: per-service, per-minute metrics from the gold layer over HTTP.
#[derive(Debug, Parser)]
#[command(name = "api", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file [default: config/minutely.toml when present].
    #[arg(long, env = "MINUTELY_CONFIG")]
    config: Option<PathBuf>,
    /// Output location whose gold layer is served.
    #[arg(long, env = "MINUTELY_OUTPUT")]
    output: Option<String>,
    #[command(flatten)]
    api: ApiFlags,
    /// Log format on stderr.
    #[arg(long, default_value = "text", value_parser = ["text", "json"], env = "MINUTELY_LOG_FORMAT")]
    log_format: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Access tokens (README, "Access").
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Prints a new random token, and the line that lets it in: add the line
    /// to the tokens file, give the token to its holder.
    New {
        /// Who holds the token; the request log names it.
        name: String,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::Token { action: TokenCommand::New { name } }) = &args.command {
        return match api::new_token(name) {
            Ok((token, line)) => {
                println!("token: {token}");
                println!("tokens file line: {line}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    // rustls warns on every handshake from a client that sends an IP address
    // as the server name (wrk, some HTTP libraries): noise, not news.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rustls=error"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if args.log_format == "json" {
        logs.json().init()
    } else {
        logs.init()
    }
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn serve(args: Args) -> anyhow::Result<()> {
    let file = ConfigFile::load(args.config.as_deref()).map_err(|e| anyhow::anyhow!(e.chain()))?;
    let pipeline = PipelineFlags { output: args.output, ..PipelineFlags::default() };
    let config =
        file.resolve(Overrides { pipeline, ..Overrides::default() }).map_err(|e| anyhow::anyhow!(e.chain()))?;
    let settings = file.api.resolve(args.api).map_err(|e| anyhow::anyhow!(e.chain()))?;
    let bind = &settings.bind;
    let addr: SocketAddr = bind.parse().with_context(|| format!("Invalid bind address {bind:?}."))?;
    let interval = Duration::from_secs(settings.reload_interval_secs.max(1));
    let budget_mb = settings.memory_budget_mb;
    let output = Storage::open(&config.pipeline.output, true).map_err(|e| anyhow::anyhow!(e.chain()))?;

    let access = match &settings.tokens_file {
        Some(path) => Access::tokens_file(path).map_err(|e| anyhow::anyhow!("tokens_file: {e}"))?,
        None => Access::open(),
    };
    let tls = match (settings.tls_cert.clone(), settings.tls_key.clone()) {
        (Some(cert), Some(key)) => Some(Tls::load(cert, key).map_err(|e| anyhow::anyhow!(e))?),
        (None, None) => None,
        (Some(_), None) => {
            anyhow::bail!("tls_cert is set but tls_key is not ([api] tls_key, MINUTELY_API_TLS_KEY or --tls-key)")
        }
        (None, Some(_)) => {
            anyhow::bail!("tls_key is set but tls_cert is not ([api] tls_cert, MINUTELY_API_TLS_CERT or --tls-cert)")
        }
    };
    if access.is_open() && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "Serving without tokens on a non-loopback address: anyone who reaches it reads everything. Set [api] tokens_file (README, \"Access\").");
    }
    api::watch_files(&access, tls.as_ref()).context("Failed to start the file watcher.")?;

    let state = State::new(output, Budget::from_mb(budget_mb), access);
    let reloader = state.clone();
    std::thread::Builder::new()
        .name("reloader".into())
        .spawn(move || api::reload_every(reloader, interval))
        .context("Failed to start the reloader.")?;

    let runtime = tokio::runtime::Runtime::new().context("Failed to start the async runtime.")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("Failed to bind {addr}."))?;
        let local = listener.local_addr().context("Failed to read the bound address.")?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        println!("Listening on {scheme}://{local}");
        tracing::info!(%local, scheme, output = config.pipeline.output, budget_mb, "Serving gold.");
        match &tls {
            Some(tls) => api::serve_tls(api::routes(state), listener, tls, shutdown_signal())
                .await
                .map_err(anyhow::Error::msg)?,
            None => warp::serve(api::routes(state)).incoming(listener).graceful(shutdown_signal()).run().await,
        }
        tracing::info!("Shut down gracefully.");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return interrupt.await.unwrap_or_default(),
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    interrupt.await.unwrap_or_default();
}
