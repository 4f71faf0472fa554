//! The `api` binary: serves the gold layer of an output location.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use api::{Budget, State};
use clap::Parser;
use pipeline::config::{ApiFlags, ConfigFile, Overrides, PipelineFlags};
use pipeline::storage::Storage;
use tracing_subscriber::EnvFilter;

/// minutely API: per-service, per-minute metrics from the gold layer over HTTP.
#[derive(Debug, Parser)]
#[command(name = "api", version)]
struct Args {
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

fn main() -> ExitCode {
    let args = Args::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
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

    let state = State::new(output, Budget::from_mb(budget_mb));
    let reloader = state.clone();
    std::thread::Builder::new()
        .name("reloader".into())
        .spawn(move || api::reload_every(reloader, interval))
        .context("Failed to start the reloader.")?;

    let runtime = tokio::runtime::Runtime::new().context("Failed to start the async runtime.")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("Failed to bind {addr}."))?;
        let local = listener.local_addr().context("Failed to read the bound address.")?;
        println!("Listening on http://{local}");
        tracing::info!(%local, output = config.pipeline.output, budget_mb, "Serving gold.");
        warp::serve(api::routes(state)).incoming(listener).graceful(shutdown_signal()).run().await;
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
